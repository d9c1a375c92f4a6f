"""superscript.temporal.start: start-or-join a workflow by ID, and its result within a
deadline, against the real dev server (what every fee, script and batch start relies on).
"""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError

from superscript.temporal.start import result_within, start_or_join
from tests.conftest import unique
from tests.temporal.probes import Probe, Probes

# --- start_or_join ----------------------------------------------------------------------


async def test_concurrent_starters_share_one_run(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    workflow_id = unique("HELPERS-WF")

    handles = await asyncio.gather(
        *(
            start_or_join(client, Probe.run, f"arg-{i}", id=workflow_id, task_queue=task_queue)
            for i in range(8)
        )
    )
    await handles[0].signal(Probe.finish)
    results = {await handle.result() for handle in handles}

    assert len({handle.result_run_id for handle in handles}) == 1
    assert None not in {handle.result_run_id for handle in handles}
    assert len(results) == 1 and results <= {f"arg-{i}" for i in range(8)}


async def test_a_closed_run_is_joined_never_run_again(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    workflow_id = unique("HELPERS-WF")
    first = await start_or_join(client, Probe.run, "first", id=workflow_id, task_queue=task_queue)
    await first.signal(Probe.finish)
    assert await first.result() == "first"

    again = await start_or_join(client, Probe.run, "again", id=workflow_id, task_queue=task_queue)

    assert await again.result() == "first"
    assert again.result_run_id == first.result_run_id is not None
    assert (await again.describe()).status == WorkflowExecutionStatus.COMPLETED


async def test_a_terminated_run_is_joined_and_has_no_result(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    workflow_id = unique("HELPERS-WF")
    first = await start_or_join(client, Probe.run, "first", id=workflow_id, task_queue=task_queue)
    await first.terminate("test")

    again = await start_or_join(client, Probe.run, "again", id=workflow_id, task_queue=task_queue)

    assert again.result_run_id == first.result_run_id
    with pytest.raises(WorkflowFailureError):
        await again.result()
    assert (await again.describe()).status == WorkflowExecutionStatus.TERMINATED


# --- result_within ----------------------------------------------------------------------


async def test_result_within_gives_none_in_time_and_the_result_once_there(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    handle = await start_or_join(
        client, Probe.run, "done", id=unique("HELPERS-WF"), task_queue=task_queue
    )

    started = time.monotonic()
    assert await result_within(handle, 0.3) is None
    assert time.monotonic() - started < 5
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING  # goes on

    await handle.signal(Probe.finish)
    assert await result_within(handle, 30) == "done"


async def test_result_within_raises_when_the_run_closed_without_a_result(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    handle = await start_or_join(
        client, Probe.run, "never", id=unique("HELPERS-WF"), task_queue=task_queue
    )
    await handle.terminate("test")
    with pytest.raises(WorkflowFailureError):
        await result_within(handle, 30)
