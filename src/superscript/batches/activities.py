"""Batch activities: each applies, plans or records one chunk of items in one transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio import activity
from temporalio.client import Client, WorkflowFailureError

from superscript.batches.models import (
    Batch,
    ChunkInput,
    CompleteBatchInput,
    Counts,
    FetchRunInput,
    ItemDone,
    RecordItemsInput,
    ScriptPlan,
)
from superscript.batches.store import BatchStore
from superscript.ledger import Decider
from superscript.scripts.models import ScriptRunResult, script_workflow_id
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import Registry

# How often a waiting activity tells Temporal it is still alive.
HEARTBEAT_SECONDS = 5.0
# How often a chunk activity does (the workflow's heartbeat timeout for them is 10 s).
CHUNK_HEARTBEAT_SECONDS = 2.0

T = TypeVar("T")


async def heartbeating(work: Awaitable[T], every: float = CHUNK_HEARTBEAT_SECONDS) -> T:
    """Await ``work`` while heartbeating, so a worker lost mid-chunk is noticed in seconds.

    Without heartbeats Temporal learns of a crashed worker only when the attempt's
    start-to-close timeout (minutes) runs out; the batch stalls that long.
    """
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            activity.heartbeat()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait({task})


class BatchActivities:
    """Holds the batch store, the script registry and records, and a Temporal client."""

    def __init__(
        self, store: BatchStore, registry: Registry, runs: ScriptRuns, client: Client
    ) -> None:
        self.store = store
        self.registry = registry
        self.runs = runs
        self.client = client

    @activity.defn(name="apply_fee_chunk")
    async def apply_fee_chunk(self, input: ChunkInput) -> Counts:
        """Charge a chunk of fee items; a retry after commit finds them decided."""
        info = activity.info()
        decider = Decider(workflow_id=info.workflow_id, run_id=info.workflow_run_id)
        return await heartbeating(
            self.store.apply_fee_chunk(input.batch_id, input.start, input.end, decider)
        )

    @activity.defn(name="plan_script_chunk")
    async def plan_script_chunk(self, input: ChunkInput) -> ScriptPlan:
        return await heartbeating(
            self.store.plan_script_chunk(
                input.batch_id, input.start, input.end, self.registry, self.runs
            )
        )

    @activity.defn(name="record_batch_items")
    async def record_batch_items(self, input: RecordItemsInput) -> Counts:
        return await heartbeating(self.store.record_items(input.batch_id, input.items))

    @activity.defn(name="fetch_script_run")
    async def fetch_script_run(self, input: FetchRunInput) -> ItemDone:
        """The outcome of a run someone else started: waited for, heartbeating meanwhile."""
        handle = self.client.get_workflow_handle(
            script_workflow_id(input.script, input.order_id), result_type=ScriptRunResult
        )
        waiting = asyncio.ensure_future(handle.result())
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=HEARTBEAT_SECONDS)
                if done:
                    break
                activity.heartbeat()
            result = waiting.result()
        except WorkflowFailureError as exc:
            record = await self.runs.get(input.script, input.order_id)
            if record is None or record.result is None:
                return ItemDone(
                    seq=input.seq, status="replayed", outcome="failed", detail=str(exc.cause)
                )
            result = record.result
        finally:
            waiting.cancel()
        return ItemDone(
            seq=input.seq, status="replayed", outcome=result.status, exit_code=result.exit_code
        )

    @activity.defn(name="complete_batch")
    async def complete_batch(self, input: CompleteBatchInput) -> Batch:
        return await heartbeating(self.store.complete(input.batch_id))
