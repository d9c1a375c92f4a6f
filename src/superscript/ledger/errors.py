"""Business errors of the ledger, each with the machine-readable code the API reports."""

from __future__ import annotations


class LedgerError(Exception):
    """A decision of the ledger that the caller must hear about, not a fault."""

    code = "ledger_error"

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class AccountExists(LedgerError):
    code = "account_exists"


class AccountNotFound(LedgerError):
    code = "account_not_found"


class InsufficientFunds(LedgerError):
    code = "insufficient_funds"


class IdempotencyKeyReused(LedgerError):
    """The same key came back with another payload: nothing may be applied."""

    code = "idempotency_key_reused"
