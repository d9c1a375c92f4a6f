"""The script activities: run one attempt of a payment script, and record a decided run.

Temporal retries an activity after a failure, a timeout or a lost worker; for a payment
script that means paying twice. So the retry policy of the workflow allows exactly the
script's ``max_attempts`` (1 by default), and this activity only asks for a retry
(a retryable error) while attempts remain: a failed last attempt is returned as the
run's outcome, never retried.

Temporal's memory is not the limit, though: its attempt counter restarts in a new
workflow of the same key (after one was terminated and deleted, or its history outlived
by the retention). Each attempt is therefore claimed in the ledger before the script
starts (``ScriptRuns.claim_attempt``); the number the ledger grants is the attempt, and
once a key's ``max_attempts`` have started no attempt starts it again.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Final

from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory

from superscript.ledger.errors import IdempotencyKeyReused
from superscript.scripts.models import (
    RecordScriptResultInput,
    RunPaymentScriptInput,
    ScriptOutcome,
    ScriptRunResult,
    run_result,
    script_workflow_id,
)
from superscript.scripts.records import AttemptClaim, AttemptStarter, ScriptRuns
from superscript.scripts.registry import Registry, ScriptNotFound, ScriptSpec
from superscript.scripts.runner import RunResult, run_script
from superscript.settings import Settings
from superscript.temporal.heartbeat import heartbeating

HEARTBEAT_INTERVAL_SECONDS: Final = 1.0

# ApplicationError.type of each way an attempt can end without an outcome.
SCRIPT_FAILED: Final = "ScriptFailed"
"""Retryable: the attempt failed and the script's header allows another."""
WORKER_SHUTDOWN: Final = "WorkerShutdown"
"""Retryable: the worker stopped mid-run, the script was killed, attempts remain."""
SCRIPT_NOT_FOUND: Final = "ScriptNotFound"
"""Non-retryable: the script was removed after the run was requested; nothing ran."""
ATTEMPT_NOT_RECORDED: Final = "AttemptNotRecorded"
"""The ledger could not record the attempt (a database fault), so nothing started.

Non-retryable for Temporal, whose retry budget is the script's ``max_attempts``: the
workflow runs the activity again instead, as often as it takes, since nothing ran."""
ARGS_MISMATCH: Final = "IdempotencyKeyReused"
"""Non-retryable: the key was recorded with other args than this run's; nothing ran."""
NON_RETRYABLE_TYPES: Final = [SCRIPT_NOT_FOUND, ATTEMPT_NOT_RECORDED, ARGS_MISMATCH]

SHUTDOWN_REASON: Final = "worker shut down during the run; the script was killed"

BUSINESS: Final = ApplicationErrorCategory.BENIGN
"""An attempt that ends by the script's own doing (or a removed script) is business, not a
fault: the SDK then logs it as one DEBUG line instead of a WARNING with a traceback."""


def outcome_of_run(run: RunResult, attempt: int) -> ScriptOutcome:
    """What one attempt came to (also a batch chunk's, which runs keys itself)."""
    reason = None
    if run.timed_out:
        reason = f"{run.killed_reason}; the script and every process it started were killed"
    return ScriptOutcome(
        status="succeeded" if run.exit_code == 0 else "failed",
        exit_code=run.exit_code,
        stdout=run.stdout,
        stderr=run.stderr,
        attempts=attempt,
        reason=reason,
    )


def failed_outcome(attempt: int, reason: str) -> ScriptOutcome:
    """An attempt that ended without an exit code of its own, and why."""
    return ScriptOutcome(
        status="failed", exit_code=None, stdout="", stderr="", attempts=attempt, reason=reason
    )


def _stored_outcome(result: ScriptRunResult, *, recorded: bool) -> ScriptOutcome:
    """The outcome of a result the ledger holds.

    ``recorded`` only when the result is this workflow run's own (decided by its claim):
    a result decided under an earlier run carries that run's ID, so the workflow then
    asks the ledger for it (``record_script_result``) and answers exactly what it holds.
    """
    return ScriptOutcome(
        status=result.status,
        exit_code=result.exit_code,
        stdout=result.stdout,
        stderr=result.stderr,
        attempts=result.attempts,
        reason=result.reason,
        recorded=recorded,
    )


def worker_identity() -> str | None:
    """The worker's identity (its client's), kept with each attempt it starts."""
    try:
        return activity.client().identity
    except RuntimeError:  # no client: an activity run outside a worker (tests)
        return None


def _cancelled_by_worker_shutdown() -> bool:
    """Whether this activity's cancellation comes from its own worker stopping.

    Other cancellations (the workflow asked, or the server already timed the attempt out)
    are reported as cancellations: Temporal decides what comes of them.
    """
    details = activity.cancellation_details()
    if details is not None:
        return details.worker_shutdown
    return activity.is_worker_shutdown()


class ScriptActivities:
    """Holds the registry, the run records and the data dir shared by every run."""

    def __init__(
        self,
        registry: Registry,
        runs: ScriptRuns,
        data_dir: Path,
        *,
        heartbeat_interval: float = HEARTBEAT_INTERVAL_SECONDS,
    ) -> None:
        self.registry = registry
        self.runs = runs
        self.data_dir = data_dir.resolve()
        self.heartbeat_interval = heartbeat_interval

    @classmethod
    def from_settings(cls, engine: AsyncEngine, settings: Settings) -> ScriptActivities:
        return cls(Registry(settings.scripts_dir), ScriptRuns(engine), settings.data_dir)

    @activity.defn(name="run_payment_script")
    async def run_payment_script(self, input: RunPaymentScriptInput) -> ScriptOutcome:
        """Run one attempt; return the run's outcome, or raise to ask for another attempt.

        The attempt is claimed in the ledger first; a key already decided, or whose
        attempts have all started, returns its result and starts nothing. The script gets
        ``SUPERSCRIPT_ATTEMPT`` (the attempt number the ledger granted) and
        ``SUPERSCRIPT_DATA_DIR``. A cancellation kills the script's process group before
        it propagates; a stopping worker makes the attempt a failure with that reason.
        """
        spec = self._spec(input.script)
        claim = await self._claim(input)
        if claim.result is not None:
            return _stored_outcome(claim.result, recorded=claim.refused)
        assert claim.attempt is not None
        outcome = await self._attempt(spec, input, claim.attempt)
        if outcome.status == "failed" and claim.attempt < input.max_attempts:
            why = outcome.reason or f"exit code {outcome.exit_code}"
            raise ApplicationError(
                f"attempt {claim.attempt} of {input.max_attempts} failed: {why}",
                outcome,
                type=SCRIPT_FAILED,
                category=BUSINESS,
            )
        return await self._recorded(input, outcome)

    def _spec(self, name: str) -> ScriptSpec:
        """The registered script; a removed one ends the run, since nothing can run."""
        try:
            return self.registry.get(name)
        except ScriptNotFound as exc:
            raise ApplicationError(
                f"{exc.detail}; nothing was run",
                type=SCRIPT_NOT_FOUND,
                non_retryable=True,
                category=BUSINESS,
            ) from exc

    async def _attempt(
        self, spec: ScriptSpec, input: RunPaymentScriptInput, attempt: int
    ) -> ScriptOutcome:
        """Run the script once: what it did, or why it could not run to its end.

        A cancellation by this worker's own shutdown is a failed attempt with
        ``SHUTDOWN_REASON``, raised as ``WORKER_SHUTDOWN`` while attempts remain; any
        other cancellation propagates (Temporal decides what comes of it).
        """
        try:
            run = await run_script(
                spec,
                list(input.args),
                order_id=input.order_id,
                attempt=attempt,
                timeout=input.timeout_seconds,
                # The attempt rides along, so a heartbeat timeout still says which it was.
                heartbeat=lambda: activity.heartbeat(attempt),
                heartbeat_interval=self.heartbeat_interval,
                extra_env={"SUPERSCRIPT_DATA_DIR": str(self.data_dir)},
            )
        except asyncio.CancelledError:
            if not _cancelled_by_worker_shutdown():
                raise
            outcome = failed_outcome(attempt, SHUTDOWN_REASON)
            if attempt < input.max_attempts:
                raise ApplicationError(
                    SHUTDOWN_REASON, outcome, type=WORKER_SHUTDOWN, category=BUSINESS
                ) from None
            return outcome
        except OSError as exc:
            return failed_outcome(attempt, f"the script could not be started: {exc}")
        return outcome_of_run(run, attempt)

    async def _claim(self, input: RunPaymentScriptInput) -> AttemptClaim:
        """Claim the next attempt in the ledger, heartbeating while the database is busy.

        A database fault here starts nothing and is reported as ``ATTEMPT_NOT_RECORDED``
        (the workflow tries again). Should the fault hide a claim that did commit, that
        attempt counts as started: the key may then end "not run again" without having
        run, the safe side of at most once.
        """
        info = activity.info()
        starter = AttemptStarter(
            workflow_id=info.workflow_id or script_workflow_id(input.script, input.order_id),
            run_id=info.workflow_run_id,
            activity_id=info.activity_id,
            activity_attempt=info.attempt,
            worker=worker_identity(),
        )
        claiming = self.runs.claim_attempt(
            input.script, input.order_id, input.args, input.max_attempts, starter
        )
        try:
            return await heartbeating(claiming, 0, every=self.heartbeat_interval)
        except IdempotencyKeyReused as exc:
            raise ApplicationError(
                exc.detail, type=ARGS_MISMATCH, non_retryable=True, category=BUSINESS
            ) from exc
        except Exception as exc:
            activity.logger.warning(
                "could not record an attempt of %s; nothing was started",
                starter.workflow_id,
                exc_info=True,
            )
            raise ApplicationError(
                f"the attempt could not be recorded, so the script was not started: {exc}",
                type=ATTEMPT_NOT_RECORDED,
                non_retryable=True,
            ) from exc

    async def _recorded(
        self, input: RunPaymentScriptInput, outcome: ScriptOutcome
    ) -> ScriptOutcome:
        """Store the decided run right away (saving the workflow an activity per run).

        The first stored result of a key is final, and it is what is returned: should an
        attempt that Temporal already gave up on (a partitioned worker) have stored its
        outcome first, the workflow answers with that one, so the record and every answer
        agree. A database fault must not turn a run that happened into a retry that pays
        twice: the outcome is returned unrecorded instead, and the workflow records it.
        """
        info = activity.info()
        if info.workflow_id is None:  # not run by a workflow: nothing to record under
            return outcome
        result = run_result(
            input.script, input.order_id, outcome, info.workflow_id, info.workflow_run_id
        )
        try:
            record = await heartbeating(
                self.runs.record_result(result, input.args),
                outcome.attempts,
                every=self.heartbeat_interval,
            )
        except Exception:
            activity.logger.warning("could not record %s yet", info.workflow_id, exc_info=True)
            return outcome
        stored = record.result
        assert stored is not None
        return _stored_outcome(stored, recorded=True)

    @activity.defn(name="record_script_result")
    async def record_script_result(self, input: RecordScriptResultInput) -> ScriptRunResult:
        """Store the decided run; return the stored one (the first stored result is final)."""
        record = await self.runs.record_result(input.result, input.args)
        assert record.result is not None
        return record.result
