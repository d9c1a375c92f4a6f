"""The ledger: accounts and per-order outcomes, the only code that changes money.

Orders are applied through ``Ledger.apply_fee``/``apply_fees``, or, for a caller that
records their outcomes in rows of its own (a fee batch), ``Ledger.in_fee_transaction``.
"""

from superscript.ledger.apply import FeeResult, FeeTransaction
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
    "FeeResult",
    "FeeTransaction",
    "IdempotencyKeyReused",
    "InsufficientFunds",
    "Ledger",
    "LedgerError",
]
