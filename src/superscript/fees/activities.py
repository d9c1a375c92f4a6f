"""The fee activity: the ledger makes it exactly-once, whatever Temporal retries."""

from __future__ import annotations

from temporalio import activity

from superscript.fees.decided import RecentlyDecided
from superscript.fees.errors import business_failure
from superscript.fees.models import ApplyFeeInput
from superscript.ledger import Decider, FeeOutcome, IdempotencyKeyReused, Ledger
from superscript.testing_hooks import failpoint


class FeeActivities:
    """Holds the ledger so every activity call shares one connection pool, and (in a
    process that also serves the API) where the API finds the outcomes it returned."""

    def __init__(self, ledger: Ledger, decided: RecentlyDecided | None = None) -> None:
        self.ledger = ledger
        self.decided = decided

    @activity.defn(name="apply_fee")
    async def apply_fee(self, input: ApplyFeeInput) -> FeeOutcome:
        """Apply the order in one ledger transaction; return the order's recorded outcome.

        A decline (unknown account, insufficient funds) is a recorded outcome like a charge,
        so it is returned, not raised: the workflow completes with it. An order the ledger
        already decided with another account or amount (say by a batch) returns that
        recorded outcome too, which does not match ``input.order``; whoever started the
        workflow compares it with what it asked for and refuses the caller.
        """
        info = activity.info()
        decider = Decider(workflow_id=info.workflow_id, run_id=info.workflow_run_id)
        try:
            applied = await self.ledger.apply_fee(input.order, decider)
        except IdempotencyKeyReused as exc:
            recorded = await self.ledger.get_fee_outcome(input.order.order_id)
            if recorded is None:  # outcomes are never deleted: not a business case
                raise business_failure(exc) from exc
            return self._decided(recorded)
        await failpoint("fee-after-commit")
        return self._decided(applied.outcome)

    def _decided(self, outcome: FeeOutcome) -> FeeOutcome:
        if self.decided is not None:
            self.decided.put(outcome)
        return outcome
