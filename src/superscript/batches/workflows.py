"""``BatchWorkflow``: pages through a stored batch with a bounded window of work in flight.

A script batch runs its keys one of two ways, fixed in its input (``orchestrator``):
``chunks`` (the default) runs each chunk's keys in one activity; ``children`` is the seed's
design, a ``SinglePaymentCollectionWorkflow`` child per key. An input recorded before the
choice existed is ``children``, so old histories replay with the same commands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.workflow import ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from superscript.batches.activities import BatchActivities
    from superscript.batches.models import (
        BatchInput,
        BatchPlan,
        ChunkInput,
        CompleteBatchInput,
        Counts,
        FetchRunInput,
        ItemDone,
        PlannedRun,
        RecordItemsInput,
        ScriptPlan,
        legacy_script_workflow_id,
    )
    from superscript.scripts.models import (
        ScriptRunResult,
        SinglePaymentCollectionInput,
    )
    from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
    from superscript.temporal.retries import until_done

# What decides the commands this workflow issues (chunk size, window, when to continue as
# new) is its input's ``BatchPlan``, never a constant here: a constant changed in a deploy
# would change the commands of every running batch on replay. Timeouts and retry policies
# are not compared on replay, so they may stay constants.
CHUNK_TIMEOUT = timedelta(minutes=2)
# Chunk activities heartbeat while they work: a lost worker is noticed this fast.
CHUNK_HEARTBEAT = timedelta(seconds=10)
# A chunk of scripts run by one activity: as long as its keys' scripts may take.
SCRIPT_CHUNK_TIMEOUT = timedelta(hours=12)
# Waiting for a run another caller started: as long as its script may take, heartbeating.
FETCH_TIMEOUT = timedelta(hours=2)
FETCH_HEARTBEAT = timedelta(seconds=30)
# Infrastructure faults are retried for as long as it takes: every retry is harmless,
# since the ledger's unique order key and the item status make a chunk exactly-once.
CHUNK_RETRY = until_done()


@workflow.defn(name="BatchWorkflow")
class BatchWorkflow:
    """Works through ``BATCH-WF-{batch_id}``'s items; progress is a query away."""

    def __init__(self) -> None:
        self._counts = Counts()
        self._total = 0

    @workflow.query
    def progress(self) -> Counts:
        return self._counts

    @workflow.run
    async def run(self, input: BatchInput) -> Counts:
        self._counts = input.counts
        self._total = input.total
        plan = input.plan
        next_seq = input.next_seq
        # A list, not a set: the order of tasks must be the same on every replay.
        in_flight: list[asyncio.Task[Counts]] = []
        while next_seq < input.total or in_flight:
            while (
                next_seq < input.total
                and len(in_flight) < plan.window
                and not self._history_full(plan)
            ):
                chunk = ChunkInput(
                    batch_id=input.batch_id,
                    start=next_seq,
                    end=min(next_seq + plan.chunk_size, input.total),
                )
                work = self._chunk(input, chunk)
                in_flight.append(asyncio.create_task(work))
                next_seq = chunk.end
            if not in_flight:
                break
            done, in_flight = await workflow.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                self._counts = self._counts.plus(task.result())
        if next_seq < input.total:
            # The plan goes on with the rest of the input: one batch, one plan, every run.
            workflow.continue_as_new(
                input.model_copy(update={"next_seq": next_seq, "counts": self._counts})
            )
        await workflow.execute_activity_method(
            BatchActivities.complete_batch,
            CompleteBatchInput(batch_id=input.batch_id),
            start_to_close_timeout=CHUNK_TIMEOUT,
            heartbeat_timeout=CHUNK_HEARTBEAT,
            retry_policy=CHUNK_RETRY,
        )
        return self._counts

    @staticmethod
    def _history_full(plan: BatchPlan) -> bool:
        info = workflow.info()
        return (
            info.get_current_history_length() > plan.max_history_events
            or info.is_continue_as_new_suggested()
        )

    def _chunk(self, input: BatchInput, chunk: ChunkInput) -> Coroutine[Any, Any, Counts]:
        """The chunk's work, by the batch's kind and (for scripts) its orchestrator."""
        if input.kind == "fee":
            return self._fee_chunk(chunk)
        if input.orchestrator == "children":
            return self._script_chunk(chunk)
        return self._script_keys(chunk)

    async def _script_keys(self, chunk: ChunkInput) -> Counts:
        """The default orchestrator: one activity runs the chunk's keys itself.

        Its activity ID names the chunk, so that a retry of it claims attempts as the same
        claimer (see ``superscript.scripts.chunk_claims``).
        """
        return await workflow.execute_activity_method(
            BatchActivities.run_script_chunk,
            chunk,
            activity_id=f"script-chunk-{chunk.start}",
            start_to_close_timeout=SCRIPT_CHUNK_TIMEOUT,
            heartbeat_timeout=CHUNK_HEARTBEAT,
            retry_policy=CHUNK_RETRY,
        )

    async def _fee_chunk(self, chunk: ChunkInput) -> Counts:
        return await workflow.execute_activity_method(
            BatchActivities.apply_fee_chunk,
            chunk,
            start_to_close_timeout=CHUNK_TIMEOUT,
            heartbeat_timeout=CHUNK_HEARTBEAT,
            retry_policy=CHUNK_RETRY,
        )

    async def _script_chunk(self, chunk: ChunkInput) -> Counts:
        """Claim the chunk's keys, run one child per new key, then record every end."""
        plan = await workflow.execute_activity_method(
            BatchActivities.plan_script_chunk,
            chunk,
            start_to_close_timeout=CHUNK_TIMEOUT,
            heartbeat_timeout=CHUNK_HEARTBEAT,
            retry_policy=CHUNK_RETRY,
        )
        ends = await asyncio.gather(*(self._script_run(plan, run) for run in plan.runs))
        recorded = await workflow.execute_activity_method(
            BatchActivities.record_batch_items,
            RecordItemsInput(batch_id=chunk.batch_id, items=list(ends)),
            start_to_close_timeout=CHUNK_TIMEOUT,
            heartbeat_timeout=CHUNK_HEARTBEAT,
            retry_policy=CHUNK_RETRY,
        )
        return plan.counts.plus(recorded)

    async def _script_run(self, plan: ScriptPlan, run: PlannedRun) -> ItemDone:
        """The seed's orchestrator step: a child per key; one already started is a replay."""
        workflow_id = run.workflow_id or legacy_script_workflow_id(plan.script, run.order_id)
        try:
            child = await workflow.start_child_workflow(
                SinglePaymentCollectionWorkflow.run,
                SinglePaymentCollectionInput(
                    script=plan.script,
                    order_id=run.order_id,
                    args=run.args,
                    max_attempts=plan.max_attempts,
                    timeout_seconds=plan.timeout_seconds,
                ),
                id=workflow_id,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                # A payment in flight finishes even if its batch is stopped.
                parent_close_policy=ParentClosePolicy.ABANDON,
            )
        except WorkflowAlreadyStartedError:
            return await workflow.execute_activity_method(
                BatchActivities.fetch_script_run,
                FetchRunInput(seq=run.seq, script=plan.script, order_id=run.order_id),
                start_to_close_timeout=FETCH_TIMEOUT,
                heartbeat_timeout=FETCH_HEARTBEAT,
                retry_policy=CHUNK_RETRY,
            )
        result: ScriptRunResult = await child
        return ItemDone(
            seq=run.seq,
            status="succeeded" if result.status == "succeeded" else "failed",
            outcome=result.status,
            exit_code=result.exit_code,
            detail=result.reason,
        )
