"""The ledger's values: orders, outcomes and accounts, free of any database code.

Workflows import these (through the sandbox), so they stay plain pydantic models.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, field_validator

from superscript.ledger.errors import AccountNotFound, InsufficientFunds

FeeStatus = Literal["charged", "account_not_found", "insufficient_funds"]


def decision_time() -> datetime:
    """Now, as an outcome records it: UTC, whole seconds (both databases keep it exactly)."""
    return datetime.now(UTC).replace(microsecond=0)


def decided_at_text(moment: datetime) -> str:
    """``2026-12-02T10:00:00Z``: the moment in UTC as ISO 8601."""
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds") + "Z"


def failure_detail(
    status: str,
    order_id: str,
    account_id: str,
    amount: int,
    balance_seen: int | None,
    decided_at: str | None,
) -> str | None:
    """What a declined order's outcome says, replayed to every caller; None when charged.

    One text for an outcome read back (``FeeOutcome.failure``) and one decided in bulk
    (``ledger.bulk``), so both say the same, byte for byte.
    """
    when = "" if decided_at is None else f" at {decided_at}"
    if status == "account_not_found":
        return f"account {account_id!r} did not exist when the order was decided{when}"
    if status == "insufficient_funds":
        return (
            f"account {account_id!r} had {balance_seen} and order "
            f"{order_id!r} needs {amount} when it was decided{when}"
        )
    return None


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
    # Optional: results of workflows that ran before it was recorded here still load.
    decided_at: AwareDatetime | None = None

    @field_validator("decided_at", mode="before")
    @classmethod
    def _in_utc(cls, value: object) -> object:
        """UTC, whole seconds: SQLite gives the stored time back without its zone."""
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.astimezone(UTC).replace(microsecond=0)
        return value

    @property
    def failure(self) -> AccountNotFound | InsufficientFunds | None:
        """The business error this outcome stands for, or None when it was charged.

        Its detail says when the order was decided: replayed later, "does not exist" or
        "has 5" would be read as the state of now, which may well have changed since.
        """
        detail = failure_detail(
            self.status,
            self.order_id,
            self.account_id,
            self.amount,
            self.balance_seen,
            None if self.decided_at is None else decided_at_text(self.decided_at),
        )
        if detail is None:
            return None
        if self.status == "account_not_found":
            return AccountNotFound(detail)
        return InsufficientFunds(detail)

    def matches(self, order: FeeOrder) -> bool:
        return self.account_id == order.account_id and self.amount == order.amount


class Applied(BaseModel):
    """An outcome and whether this call decided it (False: it was already recorded)."""

    model_config = ConfigDict(frozen=True)

    outcome: FeeOutcome
    applied: bool
