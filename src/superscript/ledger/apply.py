"""Applying many orders in one transaction with a handful of statements, not four per order.

The outcome of each order is the same as ``apply_in`` would give one by one, in order: the
accounts are read (and on PostgreSQL locked, in a fixed order) once, balances are worked
out in memory, and the changes are written back in bulk. Exactly-once still rests on the
unique ``order_id`` of ``fee_outcomes``: an order decided by a concurrent transaction makes
the insert fail, the whole transaction rolls back, and the caller's retry replays it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

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

# Bound parameters per IN (...) list: well inside SQLite's and PostgreSQL's limits.
IN_LIST_SIZE = 500


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


async def apply_orders_in(
    conn: AsyncConnection, orders: Sequence[FeeOrder], decider: Decider
) -> list[Applied | IdempotencyKeyReused]:
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
    decided_at = decision_time()
    changed: set[str] = set()
    entries: list[dict[str, object]] = []
    recorded: list[dict[str, object]] = []
    results: list[Applied | IdempotencyKeyReused] = []

    for order in orders:
        existing = outcomes.get(order.order_id)
        if existing is not None:
            if existing.matches(order):
                results.append(Applied(outcome=existing, applied=False))
            else:
                results.append(
                    IdempotencyKeyReused(
                        f"order {order.order_id!r} was already decided for account "
                        f"{existing.account_id!r} and amount {existing.amount}"
                    )
                )
            continue
        balance = balances.get(order.account_id)
        status: FeeStatus
        balance_after: int | None = None
        balance_seen: int | None = None
        if balance is None:
            status = "account_not_found"
        elif balance < order.amount:
            status, balance_seen = "insufficient_funds", balance
        else:
            status = "charged"
            balance_after = balance - order.amount
            balances[order.account_id] = balance_after
            changed.add(order.account_id)
            entries.append(
                {
                    "account_id": order.account_id,
                    "order_id": order.order_id,
                    "amount": order.amount,
                    "kind": "fee",
                }
            )
        outcome = FeeOutcome(
            order_id=order.order_id,
            account_id=order.account_id,
            amount=order.amount,
            status=status,
            balance_after=balance_after,
            balance_seen=balance_seen,
            workflow_id=decider.workflow_id,
            run_id=decider.run_id,
            decided_at=decided_at,
        )
        outcomes[order.order_id] = outcome
        recorded.append(outcome.model_dump())
        results.append(Applied(outcome=outcome, applied=True))

    if changed:
        await conn.execute(
            update(schema.accounts)
            .where(schema.accounts.c.account_id == bindparam("b_account_id"))
            .values(balance=bindparam("b_balance")),
            [
                {"b_account_id": account_id, "b_balance": balances[account_id]}
                for account_id in sorted(changed)
            ],
        )
    if entries:
        await conn.execute(schema.entries.insert(), entries)
    if recorded:
        await conn.execute(schema.fee_outcomes.insert(), recorded)
    return results
