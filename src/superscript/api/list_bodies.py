"""The bodies of the list routes and of an order's history (``{"items", "next_after"}``)."""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict

from superscript.api.schemas import AccountBody, BatchStatusBody
from superscript.batches.listing import BatchRow
from superscript.batches.models import batch_workflow_id
from superscript.ledger.listing import EntryKind
from superscript.ledger.models import FeeOutcome, FeeStatus
from superscript.scripts.models import ScriptRunResult

BATCH_WF_PREFIX = batch_workflow_id("")


def decided_via(workflow_id: str) -> str:
    """``batch:{batch_id}`` when a batch's workflow decided the order, else ``api``."""
    if workflow_id.startswith(BATCH_WF_PREFIX):
        return f"batch:{workflow_id.removeprefix(BATCH_WF_PREFIX)}"
    return "api"


class AccountsPage(BaseModel):
    items: list[AccountBody]
    next_after: str | None


class EntryBody(BaseModel):
    entry_id: int
    order_id: str
    kind: EntryKind
    amount: int
    balance_after: int | None
    at: AwareDatetime


class EntriesPage(BaseModel):
    items: list[EntryBody]
    next_after: int | None


class OrderBody(BaseModel):
    """A decided fee order: the fee body, with when, by whom and how much was refunded."""

    order_id: str
    account_id: str
    amount: int
    balance_after: int | None
    status: FeeStatus
    workflow_id: str
    run_id: str | None
    decided_at: AwareDatetime | None
    refunded: int
    via: str

    @classmethod
    def of(cls, outcome: FeeOutcome) -> OrderBody:
        return cls(
            order_id=outcome.order_id,
            account_id=outcome.account_id,
            amount=outcome.amount,
            balance_after=outcome.balance_after,
            status=outcome.status,
            workflow_id=outcome.workflow_id,
            run_id=outcome.run_id,
            decided_at=outcome.decided_at,
            # No refunds exist yet: nothing of an order has been refunded.
            refunded=0,
            via=decided_via(outcome.workflow_id),
        )


class OrdersPage(BaseModel):
    items: list[OrderBody]
    next_after: str | None


def batch_body(batch: BatchRow) -> BatchStatusBody:
    return BatchStatusBody(
        batch_id=batch.batch_id,
        kind=batch.kind,
        status=batch.status,
        total=batch.total,
        succeeded=batch.succeeded,
        replayed=batch.replayed,
        failed=batch.failed,
        pending=batch.pending,
        created_at=batch.created_at,
        completed_at=batch.completed_at,
    )


class BatchesPage(BaseModel):
    items: list[BatchStatusBody]
    next_after: str | None


class RunsPage(BaseModel):
    items: list[ScriptRunResult]
    next_after: str | None


class HistoryEvent(BaseModel):
    """One thing that happened to an order; ``event`` says which, the rest says what."""

    model_config = ConfigDict(extra="allow")

    at: AwareDatetime | None
    event: Literal["batch", "workflow", "decided", "journal_entry", "script_run", "refund"]


class HistoryBody(BaseModel):
    order_id: str
    outcome: OrderBody | None
    charges: int
    """Journal entries that took money for this order: 1 for a charged order, ever."""
    refunds: list[dict[str, object]]
    events: list[HistoryEvent]
    temporal: Literal["ok", "unavailable"]
    """Whether Temporal answered: when it did not, the workflows are missing, nothing else."""
