"""Bench-only workflows, run by a worker inside the bench process on its own task queue.

- ``NoopWorkflow`` + ``noop`` activity: the cost of one one-activity workflow through the
  dev server, with nothing else in the way (measurement (a)).
- ``FeeFanoutWorkflow``: the seed's design for many orders, one child
  ``FeeDeductionWorkflow`` (id ``FEE-WF-{order_id}``) per order on the product task queue,
  with a bounded window of children in flight (measurement (c)).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ChildWorkflowError

with workflow.unsafe.imports_passed_through():
    from superscript.fees.models import FeeDeductionInput, fee_workflow_id
    from superscript.fees.workflows import FeeDeductionWorkflow
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


class FanoutInput(BaseModel):
    orders: list[FeeOrder]
    task_queue: str
    window: int


class FanoutResult(BaseModel):
    charged: int = 0
    failed: int = 0


@workflow.defn(name="BenchFeeFanoutWorkflow")
class FeeFanoutWorkflow:
    """One child ``FeeDeductionWorkflow`` per order, at most ``window`` of them in flight."""

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
                FeeDeductionWorkflow.run,
                FeeDeductionInput(order=order),
                id=fee_workflow_id(order.order_id),
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
        except ChildWorkflowError:
            return None
