"""Inputs and results of ``SinglePaymentCollectionWorkflow`` and its activities.

One pydantic model per workflow and activity input, as Temporal practice asks. The
result of the workflow is the body the API answers with, so every caller of one key,
and every later reader of the database record, gets byte-for-byte the same answer.

The pure helpers the workflow uses live here too: the workflow sandbox re-imports the
workflow module for every run, while this module is passed through (imported once).
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    CancelledError,
    RetryState,
    TimeoutError,
    TimeoutType,
)

WORKFLOW_ID_PREFIX: Final = "SCRIPT-WF-"
COMPENSATION_WORKFLOW_ID_PREFIX: Final = "SCRIPT-COMP-WF-"
KEY_SEPARATOR: Final = "/"
"""Outside the identifier alphabet: ``{name}/{order_id}`` splits one way only."""

DEFAULT_HEARTBEAT_TIMEOUT_SECONDS: Final = 10.0
"""A worker that stops heartbeating for this long is taken for lost."""

RunStatus = Literal["succeeded", "failed"]

NOT_RUN_AGAIN_REASON: Final = "a previous attempt started and its end is unknown; not run again"
"""The contract's reason of a run whose allowed attempts had all started already."""


def script_idempotency_key(script: str, order_id: str) -> str:
    """``{name}/{order_id}``: the key of one run, as its script sees it and its IDs hold it.

    ``/`` is no identifier character, so no two (script, order_id) pairs share a key: with
    ``-`` instead, ``pay`` + ``x-1`` and ``pay-x`` + ``1`` both gave ``pay-x-1``.
    """
    return f"{script}{KEY_SEPARATOR}{order_id}"


def script_workflow_id(script: str, order_id: str) -> str:
    """The business key is the workflow ID: one run per (script, order_id), ever."""
    return f"{WORKFLOW_ID_PREFIX}{script_idempotency_key(script, order_id)}"


def compensation_workflow_id(script: str, order_id: str) -> str:
    """The one compensating run of the run of ``script`` for ``order_id``."""
    return f"{COMPENSATION_WORKFLOW_ID_PREFIX}{script_idempotency_key(script, order_id)}"


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
    # Whether the activity already stored the run's result in the database.
    recorded: bool = False


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


def run_result(
    script: str, order_id: str, outcome: ScriptOutcome, workflow_id: str, run_id: str | None
) -> ScriptRunResult:
    """The run's result: built the same way by the activity and by the workflow."""
    return ScriptRunResult(
        order_id=order_id,
        script=script,
        status=outcome.status,
        exit_code=outcome.exit_code,
        stdout=outcome.stdout,
        stderr=outcome.stderr,
        attempts=outcome.attempts,
        workflow_id=workflow_id,
        run_id=run_id,
        reason=outcome.reason,
    )


class RecordScriptResultInput(BaseModel):
    """Input of the ``record_script_result`` activity: store the decided run in the database."""

    model_config = ConfigDict(frozen=True)

    result: ScriptRunResult
    args: list[str]


def _outcome_in(details: Any) -> ScriptOutcome | None:
    """The outcome an activity error carries in its details, if it carries one."""
    if not isinstance(details, (list, tuple)) or not details:
        return None
    try:
        return ScriptOutcome.model_validate(details[0])
    except ValidationError:
        return None


def _attempt_in(details: Any) -> int | None:
    """The attempt number the activity sent with its last heartbeat."""
    if isinstance(details, (list, tuple)) and details and isinstance(details[0], int):
        return details[0]
    return None


def outcome_of_error(error: ActivityError, input: SinglePaymentCollectionInput) -> ScriptOutcome:
    """The failed outcome of a run whose last attempt ended without returning one."""
    cause = error.cause
    exhausted = error.retry_state == RetryState.MAXIMUM_ATTEMPTS_REACHED
    attempts = input.max_attempts if exhausted else 1
    if isinstance(cause, ApplicationError):
        carried = _outcome_in(cause.details)
        if carried is not None:
            return carried
        reason = cause.message
    elif isinstance(cause, TimeoutError):
        attempts = _attempt_in(cause.last_heartbeat_details) or attempts
        if cause.type == TimeoutType.HEARTBEAT:
            reason = (
                f"worker lost during the run (no heartbeat for "
                f"{input.heartbeat_timeout_seconds:g}s); whether the script finished is "
                "unknown, and it was not run again"
            )
        else:
            reason = f"the attempt did not end in time ({cause.type.name if cause.type else ''})"
    elif isinstance(cause, CancelledError):
        reason = "cancelled during the run; the script was killed"
    else:
        reason = str(cause or error)
    return ScriptOutcome(
        status="failed", exit_code=None, stdout="", stderr="", attempts=attempts, reason=reason
    )
