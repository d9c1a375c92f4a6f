"""superscript.temporal: start-or-join, a result within a deadline, and heartbeating.

Against the real dev server, with a worker of two small workflows: what every fee,
script and batch start (and every activity that heartbeats) relies on is tested here,
once, on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from superscript.temporal.heartbeat import beating, heartbeating
from superscript.temporal.start import result_within, start_or_join
from tests.conftest import unique


@workflow.defn(name="HelpersProbe", sandboxed=False)
class Probe:
    """Returns its input once told to finish: a run that stays open as long as a test likes."""

    def __init__(self) -> None:
        self._finish = False

    @workflow.signal
    def finish(self) -> None:
        self._finish = True

    @workflow.run
    async def run(self, input: str) -> str:
        await workflow.wait_condition(lambda: self._finish)
        return input


class Call(BaseModel):
    activity: str
    attempts: int = 1


@workflow.defn(name="HelpersActivityProbe", sandboxed=False)
class ActivityProbe:
    """Runs one activity and waits for it to end, even when cancelled."""

    @workflow.run
    async def run(self, call: Call) -> Any:
        return await workflow.execute_activity(
            call.activity,
            "",
            start_to_close_timeout=timedelta(seconds=60),
            heartbeat_timeout=timedelta(seconds=2),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(milliseconds=100), maximum_attempts=call.attempts
            ),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


class Probes:
    """Activities that heartbeat through ``heartbeating`` and say what happened to them."""

    def __init__(self) -> None:
        self.events: list[str] = []

    @activity.defn(name="helpers_details_then_fail")
    async def details_then_fail(self, _: str) -> list[Any]:
        """Attempt 1 heartbeats its details and fails; attempt 2 returns what it was handed."""
        info = activity.info()
        if info.attempt == 1:
            await heartbeating(asyncio.sleep(0.5), "progress", 7, every=0.05)
            raise ApplicationError("once more")
        return list(info.heartbeat_details)

    @activity.defn(name="helpers_wait_until_cancelled")
    async def wait_until_cancelled(self, _: str) -> str:
        async def work() -> str:
            self.events.append("started")
            try:
                await asyncio.sleep(120)
            except asyncio.CancelledError:
                self.events.append("cancelled")
                await asyncio.sleep(0.3)  # clean-up the activity must not outrun
                self.events.append("cleaned up")
                raise
            return "never cancelled"

        try:
            return await heartbeating(work(), every=0.1)
        finally:
            self.events.append("activity ended")


@pytest.fixture
async def probes(client: Client) -> AsyncIterator[tuple[str, Probes]]:
    """A worker of the probes on a task queue of its own: (task queue, activities)."""
    task_queue = unique("tq-helpers")
    activities = Probes()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Probe, ActivityProbe],
        activities=[activities.details_then_fail, activities.wait_until_cancelled],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield task_queue, activities


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


# --- heartbeating, in an activity -------------------------------------------------------


async def test_heartbeat_details_reach_the_next_attempt(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, _ = probes
    handle = await client.start_workflow(
        ActivityProbe.run,
        Call(activity="helpers_details_then_fail", attempts=2),
        id=unique("HELPERS-WF"),
        task_queue=task_queue,
    )
    assert await handle.result() == ["progress", 7]


async def test_a_cancelled_activity_cancels_its_work_and_waits_for_it(
    client: Client, probes: tuple[str, Probes]
) -> None:
    task_queue, activities = probes
    handle = await client.start_workflow(
        ActivityProbe.run,
        Call(activity="helpers_wait_until_cancelled"),
        id=unique("HELPERS-WF"),
        task_queue=task_queue,
    )
    deadline = time.monotonic() + 30
    while "started" not in activities.events:
        assert time.monotonic() < deadline, "the activity never started"
        await asyncio.sleep(0.05)

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
