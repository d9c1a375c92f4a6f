"""The ledger: accounts and per-order outcomes, the only code that changes money."""

from superscript.ledger.errors import (
    AccountExists,
    AccountNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
    LedgerError,
)
from superscript.ledger.models import Account, Applied, Decider, FeeOrder, FeeOutcome
from superscript.ledger.store import Ledger

__all__ = [
    "Account",
    "AccountExists",
    "AccountNotFound",
    "Applied",
    "Decider",
    "FeeOrder",
    "FeeOutcome",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "Ledger",
    "LedgerError",
]
