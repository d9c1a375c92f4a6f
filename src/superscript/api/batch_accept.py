"""The end of every batch submission, JSON or CSV: store the items, start the workflow."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from superscript.api.deps import Services
from superscript.api.problems import Problem
from superscript.api.schemas import BatchAccepted
from superscript.batches.client import ensure_batch_workflow
from superscript.batches.models import DEFAULT_ORCHESTRATOR, BatchKind, ScriptOrchestrator
from superscript.batches.store import BatchStore
from superscript.batches.storing import StagedItems
from superscript.ledger import LedgerError


async def accept_batch(
    svc: Services,
    batch_id: str,
    kind: BatchKind,
    script: str | None,
    staged: StagedItems,
    orchestrator: ScriptOrchestrator = DEFAULT_ORCHESTRATOR,
) -> JSONResponse:
    """Store the items, then start ``BATCH-WF-{batch_id}``; the same batch again is a no-op.

    ``orchestrator`` is not in the items' digest: it changes how the keys run, not what
    the batch is, so the same batch sent again with another one goes on as it started.
    """
    try:
        batch, _created = await BatchStore(svc.ledger).create_staged(batch_id, kind, script, staged)
    except LedgerError as exc:
        raise Problem.from_ledger(exc, batch_id=batch_id) from exc
    await ensure_batch_workflow(
        svc.client, batch, svc.settings.task_queue, orchestrator=orchestrator
    )
    accepted = BatchAccepted(
        batch_id=batch.batch_id,
        kind=batch.kind,
        status=batch.status,
        total=batch.total,
        workflow_id=batch.workflow_id,
    )
    return JSONResponse(accepted.model_dump(), status_code=202)
