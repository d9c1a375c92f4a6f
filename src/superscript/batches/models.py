"""Batch items as submitted, batch progress, and the inputs of the batch workflow.

A fee item is the ledger's ``FeeOrder`` itself: what a batch stores is what it applies.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from superscript.ledger.models import FeeOrder

BatchKind = Literal["fee", "script"]
ScriptOrchestrator = Literal["chunks", "children"]
"""How a script batch runs its keys: ``chunks`` (the default) runs many keys per chunk
activity; ``children`` is the seed's design, one ``SinglePaymentCollectionWorkflow`` per key."""
DEFAULT_ORCHESTRATOR: ScriptOrchestrator = "chunks"
ItemStatus = Literal["pending", "succeeded", "replayed", "failed"]
# How an item ends: every status but ``pending``.
EndStatus = Literal["succeeded", "replayed", "failed"]
WORKFLOW_ID_PREFIX = "BATCH-WF-"


def batch_workflow_id(batch_id: str) -> str:
    return f"{WORKFLOW_ID_PREFIX}{batch_id}"


class ScriptItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    order_id: str
    args: list[str]


# One submitted item: of a fee batch, or of a script batch.
BatchItem = FeeOrder | ScriptItem


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


class BatchPlan(BaseModel):
    """Everything that decides which commands ``BatchWorkflow`` issues, fixed at its start.

    It travels in the workflow's input (and through continue-as-new), never in module
    constants: a running batch replays on a worker with other defaults unchanged.
    """

    model_config = ConfigDict(frozen=True)

    # Items per chunk activity (a fee chunk is one ledger transaction; a script chunk
    # starts one child workflow per item).
    chunk_size: int = Field(ge=1)
    # Chunks in flight at once.
    window: int = Field(ge=1)
    # The run continues as new once its history is longer than this.
    max_history_events: int = Field(ge=1)


# The plan of every batch started before plans travelled in the input: the module
# constants of that code. Inputs without a plan replay with these, so never change them.
LEGACY_PLANS: dict[BatchKind, BatchPlan] = {
    "fee": BatchPlan(chunk_size=2000, window=4, max_history_events=10_000),
    "script": BatchPlan(chunk_size=50, window=4, max_history_events=10_000),
}


class BatchInput(BaseModel):
    """Input of ``BatchWorkflow``; ``next_seq`` and ``counts`` carry over continue-as-new.

    ``plan`` is what the starter chose (``superscript.batches.client``); an input stored
    before it existed gets the plan that code used (``LEGACY_PLANS``).
    """

    batch_id: str
    kind: BatchKind
    script: str | None = None
    total: int
    next_seq: int = 0
    counts: Counts = Counts()
    plan: BatchPlan
    # Absent from inputs recorded before it existed: those batches ran the seed's children.
    orchestrator: ScriptOrchestrator = "children"

    @model_validator(mode="before")
    @classmethod
    def _legacy_plan(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("plan") is None and data.get("kind") in LEGACY_PLANS:
            return {**data, "plan": LEGACY_PLANS[data["kind"]]}
        return data


class ChunkInput(BaseModel):
    """Input of the chunk activities: items ``start`` (inclusive) to ``end`` (exclusive)."""

    batch_id: str
    start: int
    end: int


class CompleteBatchInput(BaseModel):
    batch_id: str


class PlannedRun(BaseModel):
    """An item whose script run the batch starts as a child workflow.

    ``workflow_id`` is the child's ID: the one the key was claimed under in the ledger,
    sent by the planning activity so that it is in the batch's history. A later change of
    the ID format never changes a running batch's commands; plans recorded before the
    field existed named their children ``legacy_script_workflow_id``.
    """

    seq: int
    order_id: str
    args: list[str]
    workflow_id: str | None = None


def legacy_script_workflow_id(script: str, order_id: str) -> str:
    """The child ID of a plan recorded without one: the format of that code. Never change."""
    return f"SCRIPT-WF-{script}-{order_id}"


class ScriptPlan(BaseModel):
    """A chunk of script items: the runs to start, and what was decided without one."""

    script: str
    max_attempts: int
    timeout_seconds: float
    runs: list[PlannedRun]
    counts: Counts


class ItemDone(BaseModel):
    """One item's end: as a fee chunk decided it, or as the batch workflow saw it."""

    seq: int
    status: EndStatus
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
