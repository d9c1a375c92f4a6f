"""Inputs and results of ``SinglePaymentCollectionWorkflow`` and its activities.

One pydantic model per workflow and activity input, as Temporal practice asks. The
result of the workflow is the body the API answers with, so every caller of one key,
and every later reader of the database record, gets byte-for-byte the same answer.
"""

from __future__ import annotations

from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, Field

WORKFLOW_ID_PREFIX: Final = "SCRIPT-WF-"

DEFAULT_HEARTBEAT_TIMEOUT_SECONDS: Final = 10.0
"""A worker that stops heartbeating for this long is taken for lost."""

RunStatus = Literal["succeeded", "failed"]


def script_workflow_id(script: str, order_id: str) -> str:
    """The business key is the workflow ID: one run per (script, order_id), ever."""
    return f"{WORKFLOW_ID_PREFIX}{script}-{order_id}"


class SinglePaymentCollectionInput(BaseModel):
    """Input of ``SinglePaymentCollectionWorkflow``.

    ``max_attempts`` and ``timeout_seconds`` are the script's header settings as they were
    when the run was requested: editing the script later never changes a run in flight.
    """

    model_config = ConfigDict(frozen=True)

    script: str
    order_id: str
    args: list[str]
    max_attempts: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)
    heartbeat_timeout_seconds: float = Field(default=DEFAULT_HEARTBEAT_TIMEOUT_SECONDS, gt=0)


class RunPaymentScriptInput(BaseModel):
    """Input of the ``run_payment_script`` activity: one attempt of the script."""

    model_config = ConfigDict(frozen=True)

    script: str
    order_id: str
    args: list[str]
    max_attempts: int = Field(ge=1)
    timeout_seconds: float = Field(gt=0)


class ScriptOutcome(BaseModel):
    """What the attempts of one run came to (the workflow adds the run's identity).

    ``reason`` says why a run failed without an exit code of its own (a timeout, a lost
    or stopped worker, a cancellation); it is ``None`` when the script exited by itself.
    """

    model_config = ConfigDict(frozen=True)

    status: RunStatus
    exit_code: int | None
    stdout: str
    stderr: str
    attempts: int = Field(ge=1)
    reason: str | None = None


class ScriptRunResult(BaseModel):
    """The decided run of one (script, order_id): the workflow's result and the API body."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    script: str
    status: RunStatus
    exit_code: int | None
    stdout: str
    stderr: str
    attempts: int
    workflow_id: str
    run_id: str | None
    reason: str | None = None


class RecordScriptResultInput(BaseModel):
    """Input of the ``record_script_result`` activity: store the decided run in the database."""

    model_config = ConfigDict(frozen=True)

    result: ScriptRunResult
    args: list[str]
