"""Typed, non-retryable Temporal failures for the ledger's business decisions."""

from __future__ import annotations

from temporalio.exceptions import ApplicationError

from superscript.ledger.errors import LedgerError

# ApplicationError.type for each ledger decision; the API maps them back to problem codes.
ERROR_TYPES: dict[str, str] = {
    "account_not_found": "AccountNotFound",
    "insufficient_funds": "InsufficientFunds",
    "idempotency_key_reused": "IdempotencyKeyReused",
}
NON_RETRYABLE_TYPES = sorted(ERROR_TYPES.values())


def business_failure(error: LedgerError) -> ApplicationError:
    """A failure that no retry can change: the order's outcome is already decided."""
    return ApplicationError(
        error.detail,
        {"code": error.code},
        type=ERROR_TYPES.get(error.code, "LedgerError"),
        non_retryable=True,
    )
