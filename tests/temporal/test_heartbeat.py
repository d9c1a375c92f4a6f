"""superscript.temporal.heartbeat: heartbeating in a real activity (details reach the next
attempt, a cancel reaches the work), and ``beating``, the loop under it, on its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from superscript.temporal.heartbeat import beating
from tests.conftest import unique
from tests.leftovers import until
from tests.temporal.probes import ActivityProbe, Call, Probes


async def start_activity_probe(
    client: Client, task_queue: str, activity: str, attempts: int = 1
) -> WorkflowHandle[Any, Any]:
    """An ``ActivityProbe`` run of ``activity`` on the probes' worker."""
    call = Call(activity=activity, attempts=attempts)
    return await client.start_workflow(
        ActivityProbe.run, call, id=unique("HELPERS-WF"), task_queue=task_queue
    )


# --- heartbeating, in an activity -------------------------------------------------------


async def test_heartbeat_details_reach_the_next_attempt(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    handle = await start_activity_probe(client, task_queue, "helpers_details_then_fail", 2)
    assert await handle.result() == ["progress", 7]


async def test_a_cancelled_activity_cancels_its_work_and_waits_for_it(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, activities = probes
    handle = await start_activity_probe(client, task_queue, "helpers_wait_until_cancelled")
    await until(lambda: "started" in activities.events, "the activity started", 30)

    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()

    # The workflow waited for the activity, which waited for its work's clean-up.
    assert activities.events == ["started", "cancelled", "cleaned up", "activity ended"]


# --- beating, the loop under heartbeating -------------------------------------------------


async def test_beats_come_while_the_work_runs_and_never_after() -> None:
    beats: list[float] = []
    assert await beating(asyncio.sleep(0.35, "done"), 0.1, lambda: beats.append(1)) == "done"
    assert 2 <= len(beats) <= 4
    count = len(beats)
    await asyncio.sleep(0.3)
    assert len(beats) == count


async def test_the_works_error_is_the_error() -> None:
    async def failing() -> None:
        await asyncio.sleep(0.05)
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        await beating(failing(), 0.01, lambda: None)


async def test_a_failing_beat_cancels_the_work_before_it_propagates() -> None:
    class Boom(Exception):
        pass

    def beat() -> None:
        raise Boom

    work = asyncio.ensure_future(asyncio.sleep(60))
    with pytest.raises(Boom):
        await beating(work, 0.01, beat)
    assert work.cancelled()


async def test_every_cancellation_is_passed_on_to_the_work() -> None:
    """A second cancel cuts the work's clean-up short instead of being swallowed."""
    ended = asyncio.Event()

    async def stubborn() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            try:
                await asyncio.sleep(60)  # a clean-up that only a second cancel ends
            finally:
                ended.set()
            raise

    waiting = asyncio.ensure_future(beating(stubborn(), 10, lambda: None))
    await asyncio.sleep(0.05)
    waiting.cancel()
    await asyncio.sleep(0.05)
    assert not waiting.done()  # waiting for the work's clean-up
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiting, 5)
    assert ended.is_set()


async def test_every_must_be_positive() -> None:
    work = asyncio.ensure_future(asyncio.sleep(0))
    with pytest.raises(ValueError, match="every must be positive"):
        await beating(work, 0, lambda: None)
    await work
