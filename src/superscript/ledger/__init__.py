"""The ledger: accounts and per-order outcomes, the only code that changes money."""

from superscript.ledger.errors import (
    AccountExists,
    AccountNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerError,
)
from superscript.ledger.store import Account, Decider, FeeOrder, FeeOutcome, Ledger

__all__ = [
    "Account",
    "AccountExists",
    "AccountNotFound",
    "Decider",
    "FeeOrder",
    "FeeOutcome",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "Ledger",
    "LedgerError",
]
