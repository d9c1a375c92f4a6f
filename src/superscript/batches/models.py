"""Batch items as submitted, batch progress, and the inputs of the batch workflow."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

BatchKind = Literal["fee", "script"]
ItemStatus = Literal["pending", "succeeded", "replayed", "failed"]
WORKFLOW_ID_PREFIX = "BATCH-WF-"


def batch_workflow_id(batch_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{batch_id}"


class FeeItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str
    account_id: str
    amount: int


class ScriptItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str
    args: list[str]


class Counts(BaseModel):
    """How many items ended each way; ``pending`` is what is left of ``total``."""

    succeeded: int = 0
    replayed: int = 0
    failed: int = 0

    def plus(self, other: Counts) -> Counts:
        return Counts(
            succeeded=self.succeeded + other.succeeded,
            replayed=self.replayed + other.replayed,
            failed=self.failed + other.failed,
        )

    @property
    def done(self) -> int:
        return self.succeeded + self.replayed + self.failed


class Batch(BaseModel):
    batch_id: str
    kind: BatchKind
    script: str | None
    status: Literal["running", "completed"]
    total: int
    succeeded: int
    replayed: int
    failed: int
    workflow_id: str

    @property
    def pending(self) -> int:
        return self.total - self.succeeded - self.replayed - self.failed


class BatchItemView(BaseModel):
    """One item with its outcome, as ``GET /batches/{id}/items`` shows it."""

    seq: int
    order_id: str
    status: ItemStatus
    outcome: str | None
    account_id: str | None = None
    amount: int | None = None
    args: list[str] | None = None
    exit_code: int | None = None
    detail: str | None = None


class BatchInput(BaseModel):
    """Input of ``BatchWorkflow``; ``next_seq`` and ``counts`` carry over continue-as-new."""

    batch_id: str
    kind: BatchKind
    script: str | None = None
    total: int
    next_seq: int = 0
    counts: Counts = Counts()


class ChunkInput(BaseModel):
    """Input of the chunk activities: items ``start`` (inclusive) to ``end`` (exclusive)."""

    batch_id: str
    start: int
    end: int


class CompleteBatchInput(BaseModel):
    batch_id: str


class PlannedRun(BaseModel):
    """An item whose script run the batch starts as a child workflow."""

    seq: int
    order_id: str
    args: list[str]


class ScriptPlan(BaseModel):
    """A chunk of script items: the runs to start, and what was decided without one."""

    script: str
    max_attempts: int
    timeout_seconds: float
    runs: list[PlannedRun]
    counts: Counts


class ItemDone(BaseModel):
    """One item's end, as the batch workflow saw it."""

    seq: int
    status: Literal["succeeded", "replayed", "failed"]
    outcome: str | None
    exit_code: int | None = None
    detail: str | None = None


class RecordItemsInput(BaseModel):
    batch_id: str
    items: list[ItemDone]


class FetchRunInput(BaseModel):
    """Input of ``fetch_script_run``: the outcome of a run that another caller started."""

    seq: int
    script: str
    order_id: str
