"""``FeeDeductionWorkflow``: one run per order ID, so concurrent callers share one result."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from superscript.fees.activities import FeeActivities
    from superscript.fees.errors import NON_RETRYABLE_TYPES
    from superscript.fees.models import ApplyFeeInput, FeeDeductionInput
    from superscript.ledger.models import FeeOrder, FeeOutcome
    from superscript.temporal.retries import until_done

# One ledger transaction: seconds at most, so a lost worker is noticed quickly.
APPLY_FEE_TIMEOUT = timedelta(seconds=10)
# Keep retrying infrastructure faults (database down, worker lost) for up to a day:
# giving up would leave the order undecided under an ID that can never run again.
APPLY_FEE_RETRY = until_done(NON_RETRYABLE_TYPES)
APPLY_FEE_SCHEDULE_TO_CLOSE = timedelta(days=1)
# Runs from this patch on apply the fee in a local activity, inside the first workflow task:
# no activity task through the server, so a call is one round trip (with eager start).
# Runs started before it (their histories hold ActivityTaskScheduled) replay the old branch.
LOCAL_FEE_PATCH = "apply-fee-in-a-local-activity"
# A local activity retries inside the worker, heartbeating the workflow task (three events
# per heartbeat): fine for a blip, not for a day-long outage. After this long the order goes
# on as a regular activity with the retry policy above, which writes no event per attempt.
LOCAL_FEE_SCHEDULE_TO_CLOSE = timedelta(seconds=30)
# Run outside the sandbox: a new sandbox per run (a fresh import of this module and its
# restricted globals) cost more CPU than the rest of the workflow. It is safe here because
# the run is a few lines of workflow API calls on its input (no clock, no randomness, no
# I/O, no module state); the replay test still checks its commands.
SANDBOXED = False


def outcome_line(outcome: FeeOutcome, order: FeeOrder, workflow_id: str) -> str:
    """The one log line of a decided order: no traceback, for it is not a fault."""
    if not outcome.matches(order):
        return (
            f"order {outcome.order_id} was already decided for account {outcome.account_id} "
            f"and amount {outcome.amount}: idempotency_key_reused ({workflow_id})"
        )
    if outcome.status == "charged":
        return f"order {outcome.order_id} charged {outcome.amount} ({workflow_id})"
    return f"order {outcome.order_id} declined: {outcome.status} ({workflow_id})"


@workflow.defn(name="FeeDeductionWorkflow", sandboxed=SANDBOXED)
class FeeDeductionWorkflow:
    """Deduct one order's fee through the ledger; its ID is ``FEE-WF-{order_id}``.

    The workflow completes with the order's recorded outcome, whatever it is: a charge,
    a decline, or (when the ledger already held the order with another account or
    amount, say from a batch) that earlier outcome. All three are business decisions
    the ledger has made once and for all; failing the workflow would paint them red in
    the Temporal UI beside the faults an operator must look at, and, since the ID can
    never run again, would leave a failure as the ID's last word where the ledger holds
    a decided order. The caller compares the outcome with its order and answers 422.
    Only faults no retry mends (the ledger lost a row it had) fail the workflow.
    """

    @workflow.run
    async def run(self, input: FeeDeductionInput) -> FeeOutcome:
        apply = ApplyFeeInput(order=input.order)
        outcome: FeeOutcome | None = None
        if workflow.patched(LOCAL_FEE_PATCH):
            try:
                outcome = await workflow.execute_local_activity_method(
                    FeeActivities.apply_fee,
                    apply,
                    start_to_close_timeout=APPLY_FEE_TIMEOUT,
                    schedule_to_close_timeout=LOCAL_FEE_SCHEDULE_TO_CLOSE,
                    retry_policy=APPLY_FEE_RETRY,
                )
            except ActivityError as exc:
                if isinstance(exc.cause, ApplicationError) and exc.cause.non_retryable:
                    raise  # the ledger lost a row: no retry mends it
                workflow.logger.warning(
                    "order %s: the local fee activity gave up (%s); going on as an activity",
                    input.order.order_id,
                    exc.cause,
                )
        if outcome is None:
            outcome = await workflow.execute_activity_method(
                FeeActivities.apply_fee,
                apply,
                start_to_close_timeout=APPLY_FEE_TIMEOUT,
                schedule_to_close_timeout=APPLY_FEE_SCHEDULE_TO_CLOSE,
                retry_policy=APPLY_FEE_RETRY,
            )
        workflow.logger.info(outcome_line(outcome, input.order, workflow.info().workflow_id))
        return outcome
