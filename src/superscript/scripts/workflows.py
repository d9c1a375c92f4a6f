"""``SinglePaymentCollectionWorkflow``: one run of a payment script per (script, order_id).

Its ID is ``SCRIPT-WF-{script}/{order_id}``, so every caller of one key shares one run and
one result. The script runs at most ``max_attempts`` times (its header; 1 by default):
whatever ends the last attempt (an exit code, a timeout, a lost or stopped worker, a
cancellation) becomes the run's ``failed`` result here instead of another attempt.
The ledger keeps the count of attempts (the activity claims each one there before the
script starts), so a new workflow of a key whose attempts were used starts nothing.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.workflow import ActivityCancellationType

with workflow.unsafe.imports_passed_through():
    from superscript.scripts.activities import (
        ATTEMPT_NOT_RECORDED,
        NON_RETRYABLE_TYPES,
        ScriptActivities,
    )
    from superscript.scripts.models import (
        RecordScriptResultInput,
        RunPaymentScriptInput,
        ScriptOutcome,
        ScriptRunResult,
        SinglePaymentCollectionInput,
        outcome_of_error,
        run_result,
    )
    from superscript.temporal.retries import until_done

# Past the script's own timeout the runner still kills and reaps it (seconds at most).
RUN_MARGIN = timedelta(seconds=30)
RETRY_INITIAL_INTERVAL = timedelta(seconds=1)
RETRY_MAXIMUM_INTERVAL = timedelta(seconds=30)

# Storing the result is idempotent: retry database faults for up to a day.
RECORD_TIMEOUT = timedelta(seconds=10)
RECORD_SCHEDULE_TO_CLOSE = timedelta(days=1)
RECORD_RETRY = until_done()

# The ledger could not record an attempt (nothing started): try again, backing off.
CLAIM_RETRY_INITIAL = timedelta(seconds=1)
CLAIM_RETRY_MAXIMUM = timedelta(seconds=30)


def script_retry_policy(max_attempts: int) -> RetryPolicy:
    """Exactly the attempts the script's author allowed; 1 means never run twice."""
    return RetryPolicy(
        initial_interval=RETRY_INITIAL_INTERVAL,
        backoff_coefficient=2.0,
        maximum_interval=RETRY_MAXIMUM_INTERVAL,
        maximum_attempts=max_attempts,
        non_retryable_error_types=NON_RETRYABLE_TYPES,
    )


def outcome_line(result: ScriptRunResult) -> str:
    """The run's one log line: a failed script is a business outcome, not a fault."""
    why = result.reason or f"exit code {result.exit_code}"
    end = "succeeded" if result.status == "succeeded" else f"failed: {why}"
    return f"script run {result.script}/{result.order_id} {end} ({result.workflow_id})"


@workflow.defn(name="SinglePaymentCollectionWorkflow")
class SinglePaymentCollectionWorkflow:
    """Run one payment script once for one order and return (and record) what it did."""

    @workflow.run
    async def run(self, input: SinglePaymentCollectionInput) -> ScriptRunResult:
        info = workflow.info()
        try:
            outcome = await self._outcome(input)
        except asyncio.CancelledError:
            outcome = ScriptOutcome(
                status="failed",
                exit_code=None,
                stdout="",
                stderr="",
                attempts=1,
                reason="cancelled during the run; the script was killed",
            )

        result = run_result(input.script, input.order_id, outcome, info.workflow_id, info.run_id)
        workflow.logger.info(outcome_line(result))
        if outcome.recorded:
            return result
        # The activity could not store it (it never returned, or the database failed).
        try:
            return await workflow.execute_activity_method(
                ScriptActivities.record_script_result,
                RecordScriptResultInput(result=result, args=input.args),
                start_to_close_timeout=RECORD_TIMEOUT,
                schedule_to_close_timeout=RECORD_SCHEDULE_TO_CLOSE,
                retry_policy=RECORD_RETRY,
            )
        except ActivityError as error:
            # The run is decided and this stays its result in Temporal's history, but no
            # answer is built from it: until the record holds it, readers get a 503.
            workflow.logger.warning("could not record %s: %s", info.workflow_id, error)
            return result

    async def _outcome(self, input: SinglePaymentCollectionInput) -> ScriptOutcome:
        """What the script's attempts came to; an activity that could not record its
        attempt started nothing, so it is run again (a new activity), backing off."""
        delay = CLAIM_RETRY_INITIAL
        while True:
            try:
                return await self._attempts(input)
            except ActivityError as error:
                if not _nothing_started(error):
                    return outcome_of_error(error, input)
                workflow.logger.warning("%s: %s; trying again", workflow.info().workflow_id, error)
            await workflow.sleep(delay)
            delay = min(delay * 2, CLAIM_RETRY_MAXIMUM)

    async def _attempts(self, input: SinglePaymentCollectionInput) -> ScriptOutcome:
        """The script's attempts: one activity, retried by Temporal as the header allows."""
        return await workflow.execute_activity_method(
            ScriptActivities.run_payment_script,
            RunPaymentScriptInput(
                script=input.script,
                order_id=input.order_id,
                args=input.args,
                max_attempts=input.max_attempts,
                timeout_seconds=input.timeout_seconds,
            ),
            start_to_close_timeout=timedelta(seconds=input.timeout_seconds) + RUN_MARGIN,
            heartbeat_timeout=timedelta(seconds=input.heartbeat_timeout_seconds),
            retry_policy=script_retry_policy(input.max_attempts),
            # A cancelled workflow waits until the script is really killed.
            cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
        )


def _nothing_started(error: ActivityError) -> bool:
    """Whether the activity failed because the ledger could not record its attempt."""
    cause = error.cause
    return isinstance(cause, ApplicationError) and cause.type == ATTEMPT_NOT_RECORDED
