"""Batch activities: each applies, plans or records one chunk of items in one transaction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from superscript.batches.models import (
    Batch,
    ChunkInput,
    CompleteBatchInput,
    Counts,
    FetchRunInput,
    ItemDone,
    PlannedRun,
    RecordItemsInput,
    ScriptPlan,
)
from superscript.batches.planning import plan_script_chunk
from superscript.batches.script_chunks import ChunkPlace, run_script_chunk
from superscript.batches.script_waits import WaitFor
from superscript.batches.store import BatchStore
from superscript.ledger import Decider
from superscript.scripts.activities import worker_identity
from superscript.scripts.client import not_recorded, recorded_run, script_handle, workflow_for
from superscript.scripts.models import ScriptRunResult
from superscript.scripts.records import AttemptStarter, ScriptRuns
from superscript.scripts.registry import Registry
from superscript.temporal.heartbeat import heartbeating
from superscript.testing_hooks import failpoint

# How often a waiting activity tells Temporal it is still alive (chunk activities beat
# every ``heartbeat.EVERY_SECONDS``, inside their 10 s heartbeat timeout).
HEARTBEAT_SECONDS = 5.0
# Scripts a worker runs at once for its script chunks (all chunks together), and the
# most keys claimed per transaction (a chunk claims only keys it holds a free slot for)
# and ends stored per transaction.
SCRIPT_SLOTS = 16
SCRIPT_GROUP = 32


class BatchActivities:
    """Holds the batch store, the script registry and records, and a Temporal client."""

    def __init__(
        self,
        store: BatchStore,
        registry: Registry,
        runs: ScriptRuns,
        client: Client,
        *,
        data_dir: Path = Path("data"),
        script_slots: int = SCRIPT_SLOTS,
        script_group: int = SCRIPT_GROUP,
    ) -> None:
        self.store = store
        self.registry = registry
        self.runs = runs
        self.client = client
        self.chunks = ChunkPlace(
            store.ledger, registry, runs, asyncio.Semaphore(script_slots), data_dir, script_group
        )

    @activity.defn(name="apply_fee_chunk")
    async def apply_fee_chunk(self, input: ChunkInput) -> Counts:
        """Charge a chunk of fee items; a retry after commit finds them decided."""
        info = activity.info()
        decider = Decider(workflow_id=info.workflow_id, run_id=info.workflow_run_id)
        counts = await heartbeating(
            self.store.apply_fee_chunk(input.batch_id, input.start, input.end, decider)
        )
        await failpoint("fee-chunk-after-commit")
        return counts

    @activity.defn(name="run_script_chunk")
    async def run_script_chunk(self, input: ChunkInput) -> Counts:
        """Run a chunk of script items here (the default orchestrator), heartbeating.

        Each attempt is claimed in the ledger under this activity's ID, which the batch
        workflow makes the chunk's (``script-chunk-{start}``): a retry of the chunk is the
        same claimer, so it carries on where the lost attempt left off.
        """
        info = activity.info()
        starter = AttemptStarter(
            workflow_id=info.workflow_id or "",
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            activity_attempt=info.attempt,
            worker=worker_identity(),
        )
        wait = WaitFor(self.client, self.runs, info.task_queue)
        return await heartbeating(
            run_script_chunk(self.chunks, input.batch_id, input.start, input.end, starter, wait)
        )

    @activity.defn(name="plan_script_chunk")
    async def plan_script_chunk(self, input: ChunkInput) -> ScriptPlan:
        """Claim the chunk's keys; each child is to run under the ID its key's record names.

        A record from before ``SCRIPT-WF-{name}/{order_id}`` may name an ambiguous older ID
        that another key's run holds: such a key's run never began, so its child gets the
        key's own ID instead (joining the other key's run would wait for it forever).
        """
        plan = await heartbeating(
            plan_script_chunk(
                self.store.ledger, input.batch_id, input.start, input.end, self.registry, self.runs
            )
        )
        runs = [await self._own_workflow(plan.script, run) for run in plan.runs]
        return plan.model_copy(update={"runs": runs})

    async def _own_workflow(self, script: str, run: PlannedRun) -> PlannedRun:
        if run.workflow_id is None:
            return run
        chosen = await workflow_for(self.client, script, run.order_id, run.workflow_id)
        return run if chosen == run.workflow_id else run.model_copy(update={"workflow_id": chosen})

    @activity.defn(name="record_batch_items")
    async def record_batch_items(self, input: RecordItemsInput) -> Counts:
        return await heartbeating(self.store.record_items(input.batch_id, input.items))

    @activity.defn(name="fetch_script_run")
    async def fetch_script_run(self, input: FetchRunInput) -> ItemDone:
        """The outcome of a run someone else started: waited for, heartbeating meanwhile.

        The answer is the key's record, never the workflow's result (a history written
        for another ledger would report a run this ledger never saw). A record that names
        an older workflow ID is followed to that workflow when it runs this key.
        """
        record = await self.runs.get(input.script, input.order_id)
        if record is not None and record.result is not None:
            return _replayed(input, record.result)
        handle = None if record is None else await recorded_run(self.client, record)
        if handle is None:
            handle = script_handle(self.client, input.script, input.order_id)
        try:
            await heartbeating(handle.result(), every=HEARTBEAT_SECONDS)
        except WorkflowFailureError as exc:
            detail = f"{handle.id} ended without deciding the run: {exc.cause}"
        else:
            detail = not_recorded(handle.id).detail
        record = await self.runs.get(input.script, input.order_id)
        if record is None or record.result is None:
            return ItemDone(seq=input.seq, status="replayed", outcome="failed", detail=detail)
        return _replayed(input, record.result)

    @activity.defn(name="complete_batch")
    async def complete_batch(self, input: CompleteBatchInput) -> Batch:
        return await heartbeating(self.store.complete(input.batch_id))


def _replayed(input: FetchRunInput, result: ScriptRunResult) -> ItemDone:
    return ItemDone(
        seq=input.seq, status="replayed", outcome=result.status, exit_code=result.exit_code
    )
