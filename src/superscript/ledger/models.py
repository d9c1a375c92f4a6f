"""The ledger's values: orders, outcomes and accounts, free of any database code.

Workflows import these (through the sandbox), so they stay plain pydantic models.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from superscript.ledger.errors import AccountNotFound, InsufficientFunds

FeeStatus = Literal["charged", "account_not_found", "insufficient_funds"]


class Account(BaseModel):
    model_config = ConfigDict(frozen=True)

    account_id: str
    balance: int


class FeeOrder(BaseModel):
    """What a caller asks for: take ``amount`` from ``account_id`` for ``order_id``."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    account_id: str
    amount: int


class Decider(BaseModel):
    """The workflow run that decided an order, reported to every later caller."""

    model_config = ConfigDict(frozen=True)

    workflow_id: str
    run_id: str | None = None


class FeeOutcome(BaseModel):
    """The recorded, final outcome of one order; replayed verbatim to every caller."""

    model_config = ConfigDict(frozen=True)

    order_id: str
    account_id: str
    amount: int
    status: FeeStatus
    balance_after: int | None
    balance_seen: int | None
    workflow_id: str
    run_id: str | None

    @property
    def failure(self) -> AccountNotFound | InsufficientFunds | None:
        """The business error this outcome stands for, or None when it was charged."""
        if self.status == "account_not_found":
            return AccountNotFound(f"account {self.account_id!r} does not exist")
        if self.status == "insufficient_funds":
            return InsufficientFunds(
                f"account {self.account_id!r} had {self.balance_seen} and order "
                f"{self.order_id!r} needs {self.amount}"
            )
        return None

    def matches(self, order: FeeOrder) -> bool:
        return self.account_id == order.account_id and self.amount == order.amount


class Applied(BaseModel):
    """An outcome and whether this call decided it (False: it was already recorded)."""

    model_config = ConfigDict(frozen=True)

    outcome: FeeOutcome
    applied: bool
