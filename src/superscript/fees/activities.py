"""The fee activity: the ledger makes it exactly-once, whatever Temporal retries."""

from __future__ import annotations

from temporalio import activity

from superscript.fees.errors import business_failure
from superscript.fees.models import ApplyFeeInput
from superscript.ledger import Decider, FeeOutcome, Ledger, LedgerError
from superscript.testing_hooks import failpoint


class FeeActivities:
    """Holds the ledger so every activity call shares one connection pool."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    @activity.defn(name="apply_fee")
    async def apply_fee(self, input: ApplyFeeInput) -> FeeOutcome:
        """Apply the order in one ledger transaction; a re-run replays the recorded outcome.

        Business failures (unknown account, insufficient funds, a reused key) are recorded
        outcomes or conflicts, raised as non-retryable errors so the workflow ends with them.
        """
        info = activity.info()
        decider = Decider(workflow_id=info.workflow_id, run_id=info.workflow_run_id)
        try:
            applied = await self.ledger.apply_fee(input.order, decider)
        except LedgerError as exc:
            raise business_failure(exc) from exc
        await failpoint("fee-after-commit")
        outcome = applied.outcome
        failure = outcome.failure
        if failure is not None:
            raise business_failure(failure)
        return outcome
