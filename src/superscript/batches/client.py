"""Starting a batch's workflow; safe to repeat, so a resubmission heals a lost start.

The sizes that decide how a batch is worked through are chosen here, when it starts, and
travel in its input: changing them changes new batches only, never a running one.
"""

from __future__ import annotations

from temporalio.client import Client

from superscript.batches.models import (
    DEFAULT_ORCHESTRATOR,
    Batch,
    BatchInput,
    BatchKind,
    BatchPlan,
    ScriptOrchestrator,
)
from superscript.batches.workflows import BatchWorkflow
from superscript.temporal.start import start_or_join

# Orders per fee activity: each chunk is one ledger transaction. Since a chunk is written
# in bulk (``fee_chunks``), a chunk activity's own cost (the dev server's and the SDK's,
# about 25 ms of CPU each) was a good part of a batch's: 5,000 orders make it small, and a
# chunk is still a fraction of a second, far inside its heartbeat timeout.
FEE_CHUNK_SIZE = 5000
# Script items per chunk of the seed's orchestrator: one child workflow each, so WINDOW *
# this are in flight at most, far below Temporal's limit of pending children per workflow.
SCRIPT_CHUNK_SIZE = 50
# Script items per chunk activity of the default orchestrator (it runs them itself).
SCRIPT_KEYS_CHUNK_SIZE = 500
# Chunks in flight at once.
WINDOW = 4
# Continue-as-new well before Temporal's 51,200-event history limit.
MAX_HISTORY_EVENTS = 10_000


def default_plan(
    kind: BatchKind, orchestrator: ScriptOrchestrator = DEFAULT_ORCHESTRATOR
) -> BatchPlan:
    """The plan a new batch of ``kind`` starts with: this module's sizes as they are now."""
    if kind == "fee":
        size = FEE_CHUNK_SIZE
    else:
        size = SCRIPT_CHUNK_SIZE if orchestrator == "children" else SCRIPT_KEYS_CHUNK_SIZE
    return BatchPlan(chunk_size=size, window=WINDOW, max_history_events=MAX_HISTORY_EVENTS)


async def ensure_batch_workflow(
    client: Client,
    batch: Batch,
    task_queue: str,
    plan: BatchPlan | None = None,
    orchestrator: ScriptOrchestrator = DEFAULT_ORCHESTRATOR,
) -> None:
    """Start ``BATCH-WF-{batch_id}`` unless it runs or ran already (then ``plan`` and
    ``orchestrator`` are moot: the batch goes on as it started)."""
    start = BatchInput(
        batch_id=batch.batch_id,
        kind=batch.kind,
        script=batch.script,
        total=batch.total,
        plan=plan or default_plan(batch.kind, orchestrator),
        orchestrator=orchestrator,
    )
    # Already started or already closed: either way the batch is in hand.
    await start_or_join(
        client, BatchWorkflow.run, start, id=batch.workflow_id, task_queue=task_queue
    )
