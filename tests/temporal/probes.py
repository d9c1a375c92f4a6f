"""Two small workflows and two heartbeating activities that say what happened to them:
what the tests of ``superscript.temporal`` start, on a worker of their own."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

from superscript.temporal.heartbeat import heartbeating


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
