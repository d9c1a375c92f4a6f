"""Starting a batch's workflow; safe to repeat, so a resubmission heals a lost start."""

from __future__ import annotations

import contextlib

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from superscript.batches.models import Batch, BatchInput
from superscript.batches.workflows import BatchWorkflow


async def ensure_batch_workflow(client: Client, batch: Batch, task_queue: str) -> None:
    """Start ``BATCH-WF-{batch_id}`` unless it runs or ran already."""
    start = BatchInput(
        batch_id=batch.batch_id, kind=batch.kind, script=batch.script, total=batch.total
    )
    # Already started or already closed: either way the batch is in hand.
    with contextlib.suppress(WorkflowAlreadyStartedError):
        await client.start_workflow(
            BatchWorkflow.run,
            start,
            id=batch.workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
