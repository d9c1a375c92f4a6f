"""Bench-only workflows, run by a worker inside the bench process on its own task queue.

- ``NoopWorkflow`` + ``noop`` activity: the cost of one one-activity workflow through the
  dev server, with nothing else in the way (measurement (a)).
- ``SeedFeeWorkflow``: the seed's design of one fee, one workflow running one regular
  ``apply_fee`` activity (on the bench's own ledger), started without eager start: what
  ``FeeDeductionWorkflow`` was before its local activity, kept here so that (c) and the
  sequential p50 of (j) stay the seed's whatever the product's workflow becomes.
- ``FeeFanoutWorkflow``: the seed's design for many orders, one child ``SeedFeeWorkflow``
  (id ``FEE-WF-{order_id}``) per order, with a bounded window of children in flight (c).
- ``EmptyWorkflow``: no command at all, sandboxed or not as ``FeeDeductionWorkflow`` is, started
  eagerly by the client this process's worker runs on: the floor of one eager call (k).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from superscript.fees.activities import FeeActivities
    from superscript.fees.models import ApplyFeeInput, FeeDeductionInput, fee_workflow_id
    from superscript.fees.workflows import (
        APPLY_FEE_RETRY,
        APPLY_FEE_SCHEDULE_TO_CLOSE,
        APPLY_FEE_TIMEOUT,
        SANDBOXED,
    )
    from superscript.ledger.models import FeeOrder, FeeOutcome

NOOP_TIMEOUT = timedelta(seconds=30)
NOOP_RETRY = RetryPolicy(maximum_attempts=3)


class NoopInput(BaseModel):
    item: int


@activity.defn(name="bench_noop")
async def noop(input: NoopInput) -> int:
    """Does nothing: what is measured is Temporal's round trip."""
    return input.item


@workflow.defn(name="BenchNoopWorkflow")
class NoopWorkflow:
    """One workflow, one activity, nothing else."""

    @workflow.run
    async def run(self, input: NoopInput) -> int:
        return await workflow.execute_activity(
            noop, input, start_to_close_timeout=NOOP_TIMEOUT, retry_policy=NOOP_RETRY
        )


@workflow.defn(name="BenchEmptyWorkflow", sandboxed=SANDBOXED)
class EmptyWorkflow:
    """Returns its input: a start, one workflow task, a completion. In the sandbox or not,
    as ``FeeDeductionWorkflow`` is, so that (k) is its floor."""

    @workflow.run
    async def run(self, input: NoopInput) -> int:
        return input.item


@workflow.defn(name="BenchSeedFeeWorkflow")
class SeedFeeWorkflow:
    """The seed's fee: one workflow, one regular activity, the product's timeouts."""

    @workflow.run
    async def run(self, input: FeeDeductionInput) -> FeeOutcome:
        return await workflow.execute_activity_method(
            FeeActivities.apply_fee,
            ApplyFeeInput(order=input.order),
            start_to_close_timeout=APPLY_FEE_TIMEOUT,
            schedule_to_close_timeout=APPLY_FEE_SCHEDULE_TO_CLOSE,
            retry_policy=APPLY_FEE_RETRY,
        )


class FanoutInput(BaseModel):
    orders: list[FeeOrder]
    task_queue: str
    window: int


class FanoutResult(BaseModel):
    charged: int = 0
    failed: int = 0


@workflow.defn(name="BenchFeeFanoutWorkflow")
class FeeFanoutWorkflow:
    """One child ``SeedFeeWorkflow`` per order, at most ``window`` of them in flight."""

    @workflow.run
    async def run(self, input: FanoutInput) -> FanoutResult:
        result = FanoutResult()
        # A list, not a set: the order of tasks must be the same on every replay.
        in_flight: list[asyncio.Task[FeeOutcome | None]] = []
        for order in input.orders:
            if len(in_flight) >= input.window:
                done, in_flight = await workflow.wait(
                    in_flight, return_when=asyncio.FIRST_COMPLETED
                )
                self._count(result, done)
            in_flight.append(asyncio.create_task(self._child(order, input.task_queue)))
        if in_flight:
            done, _ = await workflow.wait(in_flight)
            self._count(result, done)
        return result

    @staticmethod
    def _count(result: FanoutResult, done: list[asyncio.Task[FeeOutcome | None]]) -> None:
        for task in done:
            outcome = task.result()
            if outcome is not None and outcome.status == "charged":
                result.charged += 1
            else:
                result.failed += 1

    @staticmethod
    async def _child(order: FeeOrder, task_queue: str) -> FeeOutcome | None:
        try:
            return await workflow.execute_child_workflow(
                SeedFeeWorkflow.run,
                FeeDeductionInput(order=order),
                id=fee_workflow_id(order.order_id),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except ChildWorkflowError:
            return None
