"""Typed, non-retryable Temporal failures for what the ledger cannot answer.

A decided order (charged or declined) is returned by the activity, never raised: these
errors are left for the cases no retry can mend, which fail the workflow on purpose.
"""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from superscript.ledger.errors import LedgerError

# ApplicationError.type for each ledger decision. The list is part of the activity's
# retry policy in recorded histories: keep it as it is.
ERROR_TYPES: dict[str, str] = {
    "account_not_found": "AccountNotFound",
    "insufficient_funds": "InsufficientFunds",
    "idempotency_key_reused": "IdempotencyKeyReused",
}
NON_RETRYABLE_TYPES = sorted(ERROR_TYPES.values())


def business_failure(error: LedgerError) -> ApplicationError:
    """A failure that no retry can change."""
    return ApplicationError(
        error.detail,
        {"code": error.code},
        type=ERROR_TYPES.get(error.code, "LedgerError"),
        non_retryable=True,
    )
