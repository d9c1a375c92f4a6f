"""``FeeDeductionWorkflow``: one run per order ID, so concurrent callers share one result."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from superscript.fees.activities import FeeActivities
    from superscript.fees.errors import NON_RETRYABLE_TYPES
    from superscript.fees.models import ApplyFeeInput, FeeDeductionInput
    from superscript.ledger.models import FeeOutcome
    from superscript.retries import until_done

# One ledger transaction: seconds at most, so a lost worker is noticed quickly.
APPLY_FEE_TIMEOUT = timedelta(seconds=10)
# Keep retrying infrastructure faults (database down, worker lost) for up to a day:
# giving up would leave the order undecided under an ID that can never run again.
APPLY_FEE_RETRY = until_done(NON_RETRYABLE_TYPES)
APPLY_FEE_SCHEDULE_TO_CLOSE = timedelta(days=1)


@workflow.defn(name="FeeDeductionWorkflow")
class FeeDeductionWorkflow:
    """Deduct one order's fee through the ledger; its ID is ``FEE-WF-{order_id}``."""

    @workflow.run
    async def run(self, input: FeeDeductionInput) -> FeeOutcome:
        return await workflow.execute_activity_method(
            FeeActivities.apply_fee,
            ApplyFeeInput(order=input.order),
            start_to_close_timeout=APPLY_FEE_TIMEOUT,
            schedule_to_close_timeout=APPLY_FEE_SCHEDULE_TO_CLOSE,
            retry_policy=APPLY_FEE_RETRY,
        )
