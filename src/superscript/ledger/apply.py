"""Applying many orders in one transaction with a handful of statements, not four per order.

The outcome of each order is the same as applying them one by one, in order, would give: the
accounts are read (and on PostgreSQL locked, in a fixed order) once, balances are worked
out in memory, and the changes are written back in bulk. Exactly-once still rests on the
unique ``order_id`` of ``fee_outcomes``: an order decided by a concurrent transaction makes
the insert fail, the whole transaction rolls back, and the caller's retry replays it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.db.metadata import IN_LIST_SIZE
from superscript.ledger import schema
from superscript.ledger.errors import IdempotencyKeyReused
from superscript.ledger.models import (
    Applied,
    Decider,
    FeeOrder,
    FeeOutcome,
    FeeStatus,
    decision_time,
)

# What applying one order gives: its outcome, or the refusal of a reused key.
FeeResult = Applied | IdempotencyKeyReused


@dataclass(frozen=True)
class FeeTransaction:
    """One write transaction of the ledger (``Ledger.in_fee_transaction``).

    The orders applied here commit or roll back together with whatever else the caller
    writes on ``conn`` in it: its own record of their outcomes (a batch's items), so a
    balance never changes without that record, nor the record without the change.
    """

    conn: AsyncConnection
    decider: Decider

    async def apply(self, orders: Sequence[FeeOrder]) -> list[FeeResult]:
        """Apply ``orders`` in this transaction; one result per order, in order."""
        return await apply_orders_in(self.conn, orders, self.decider)


async def apply_orders_in(
    conn: AsyncConnection, orders: Sequence[FeeOrder], decider: Decider
) -> list[FeeResult]:
    """Apply ``orders`` in the caller's write transaction; one result per order, in order.

    A reused key comes back as an ``IdempotencyKeyReused`` in its place (nothing written
    for it) so that one bad order does not sink the others.
    """
    # Lock the accounts first, then read the outcomes: a concurrent writer of one of these
    # orders held its account's lock until it committed, so its outcome is visible now and
    # we replay it instead of colliding with it on the unique key.
    balances = await _balances(conn, sorted({order.account_id for order in orders}))
    outcomes = await _existing_outcomes(conn, sorted({order.order_id for order in orders}))
    # Set here, not by the column's server default: the outcome answered now must be the one
    # read back later, byte for byte (its failure detail says when it was decided).
    decisions = _Decisions(balances, outcomes, decider, decision_time())
    results = [decisions.decide(order) for order in orders]
    await decisions.write(conn)
    return results


async def _balances(conn: AsyncConnection, account_ids: Sequence[str]) -> dict[str, int]:
    """Current balances, locked on PostgreSQL (sorted, so bulk writers never deadlock)."""
    locking = conn.dialect.name == "postgresql"
    balances: dict[str, int] = {}
    ordered = sorted(account_ids)
    for start in range(0, len(ordered), IN_LIST_SIZE):
        part = ordered[start : start + IN_LIST_SIZE]
        query = (
            select(schema.accounts.c.account_id, schema.accounts.c.balance)
            .where(schema.accounts.c.account_id.in_(part))
            .order_by(schema.accounts.c.account_id)
        )
        if locking:
            query = query.with_for_update()
        for account_id, balance in await conn.execute(query):
            balances[account_id] = balance
    return balances


async def _existing_outcomes(
    conn: AsyncConnection, order_ids: Sequence[str]
) -> dict[str, FeeOutcome]:
    found: dict[str, FeeOutcome] = {}
    for start in range(0, len(order_ids), IN_LIST_SIZE):
        part = order_ids[start : start + IN_LIST_SIZE]
        rows = await conn.execute(
            select(schema.fee_outcomes).where(schema.fee_outcomes.c.order_id.in_(part))
        )
        for row in rows:
            outcome = FeeOutcome.model_validate(row._asdict())
            found[outcome.order_id] = outcome
    return found


class _Decisions:
    """The orders of one transaction decided in memory, in order, then written in bulk."""

    def __init__(
        self,
        balances: dict[str, int],
        outcomes: dict[str, FeeOutcome],
        decider: Decider,
        decided_at: datetime,
    ) -> None:
        self.balances = balances
        self.outcomes = outcomes
        self.decider = decider
        self.decided_at = decided_at
        self.changed: set[str] = set()
        self.entries: list[dict[str, object]] = []
        self.recorded: list[dict[str, object]] = []

    def decide(self, order: FeeOrder) -> FeeResult:
        """The order's result; an order seen before (stored, or earlier in this chunk)
        replays its outcome, or is refused when it came with another account or amount."""
        existing = self.outcomes.get(order.order_id)
        if existing is None:
            return Applied(outcome=self._decide_new(order), applied=True)
        if existing.matches(order):
            return Applied(outcome=existing, applied=False)
        return IdempotencyKeyReused(
            f"order {order.order_id!r} was already decided for account "
            f"{existing.account_id!r} and amount {existing.amount}"
        )

    def _decide_new(self, order: FeeOrder) -> FeeOutcome:
        balance = self.balances.get(order.account_id)
        status: FeeStatus
        balance_after: int | None = None
        balance_seen: int | None = None
        if balance is None:
            status = "account_not_found"
        elif balance < order.amount:
            status, balance_seen = "insufficient_funds", balance
        else:
            status = "charged"
            balance_after = self._charge(order, balance)
        outcome = FeeOutcome(
            order_id=order.order_id,
            account_id=order.account_id,
            amount=order.amount,
            status=status,
            balance_after=balance_after,
            balance_seen=balance_seen,
            workflow_id=self.decider.workflow_id,
            run_id=self.decider.run_id,
            decided_at=self.decided_at,
        )
        self.outcomes[order.order_id] = outcome
        self.recorded.append(outcome.model_dump())
        return outcome

    def _charge(self, order: FeeOrder, balance: int) -> int:
        """Take the amount in memory and journal it; the balance after."""
        balance_after = balance - order.amount
        self.balances[order.account_id] = balance_after
        self.changed.add(order.account_id)
        self.entries.append(
            {
                "account_id": order.account_id,
                "order_id": order.order_id,
                "amount": order.amount,
                "kind": "fee",
                "balance_after": balance_after,
            }
        )
        return balance_after

    async def write(self, conn: AsyncConnection) -> None:
        """The new balances, the journal entries and the outcomes: three bulk statements."""
        if self.changed:
            await conn.execute(
                update(schema.accounts)
                .where(schema.accounts.c.account_id == bindparam("b_account_id"))
                .values(balance=bindparam("b_balance")),
                [
                    {"b_account_id": account_id, "b_balance": self.balances[account_id]}
                    for account_id in sorted(self.changed)
                ],
            )
        if self.entries:
            await conn.execute(schema.entries.insert(), self.entries)
        if self.recorded:
            await conn.execute(schema.fee_outcomes.insert(), self.recorded)
