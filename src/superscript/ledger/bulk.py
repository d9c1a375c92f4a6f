"""A chunk of orders decided on plain tuples: the rows a fee batch's chunk writes.

The same decisions as ``apply._Decisions`` (in order, balances worked out in memory; an
order seen before, stored or earlier in the chunk, replays its outcome, or is refused when
it came with another account or amount), without a pydantic model or a SQLAlchemy
parameter dict per order: at 2,000 orders a chunk those cost more than the database's
own work. The caller reads the balances and stored outcomes in its write transaction
(on PostgreSQL with the accounts locked first) and writes the rows back in bulk in it, so
exactly-once still rests on ``fee_outcomes``' unique ``order_id``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from superscript.ledger.models import Decider, FeeOutcome, decided_at_text, failure_detail

# An order as a chunk reads it: seq, order_id, account_id, amount.
OrderRow = tuple[int, str, str, int]
# How it ended for its item: seq, status, outcome, detail.
ItemEnd = tuple[int, str, str, str | None]
# What an order ID was decided as, to replay or refuse it: account, amount, status, detail.
_Known = tuple[str, int, str, str | None]


# The columns of a chunk's rows, in the order of their tuples in ``ChunkRows``.
OUTCOME_COLUMNS = (
    "order_id",
    "account_id",
    "amount",
    "status",
    "balance_after",
    "balance_seen",
    "workflow_id",
    "run_id",
    "decided_at",
)
ENTRY_COLUMNS = ("account_id", "order_id", "amount", "kind", "balance_after")


@dataclass
class ChunkRows:
    """Everything a chunk writes: outcomes, journal entries, new balances, item ends."""

    # ``OUTCOME_COLUMNS`` (decided_at as the driver takes it).
    outcomes: list[tuple[object, ...]] = field(default_factory=list)
    # ``ENTRY_COLUMNS``.
    entries: list[tuple[str, str, int, str, int]] = field(default_factory=list)
    # account_id, balance (each changed account once, sorted).
    balances: list[tuple[str, int]] = field(default_factory=list)
    ends: list[ItemEnd] = field(default_factory=list)


def known_outcome(outcome: FeeOutcome) -> _Known:
    """A stored outcome as a replay needs it (its detail says when it was decided)."""
    failure = outcome.failure
    detail = None if failure is None else failure.detail
    return (outcome.account_id, outcome.amount, outcome.status, detail)


def decide_chunk(
    orders: Sequence[OrderRow],
    balances: dict[str, int],
    stored: dict[str, FeeOutcome],
    decider: Decider,
    decided_at: datetime,
    decided_at_value: object,
) -> ChunkRows:
    """Decide ``orders`` in order against ``balances`` (changed in place) and ``stored``."""
    rows = ChunkRows()
    known = {order_id: known_outcome(outcome) for order_id, outcome in stored.items()}
    when = decided_at_text(decided_at)
    changed: set[str] = set()
    workflow_id, run_id = decider.workflow_id, decider.run_id
    for seq, order_id, account_id, amount in orders:
        seen = known.get(order_id)
        if seen is not None:
            rows.ends.append(_again(seq, order_id, account_id, amount, seen))
            continue
        balance = balances.get(account_id)
        balance_after: int | None = None
        balance_seen: int | None = None
        if balance is None:
            status = "account_not_found"
        elif balance < amount:
            status, balance_seen = "insufficient_funds", balance
        else:
            status = "charged"
            balance_after = balances[account_id] = balance - amount
            changed.add(account_id)
            rows.entries.append((account_id, order_id, amount, "fee", balance_after))
        detail = failure_detail(status, order_id, account_id, amount, balance_seen, when)
        known[order_id] = (account_id, amount, status, detail)
        rows.outcomes.append(
            (
                order_id,
                account_id,
                amount,
                status,
                balance_after,
                balance_seen,
                workflow_id,
                run_id,
                decided_at_value,
            )
        )
        rows.ends.append((seq, "succeeded" if detail is None else "failed", status, detail))
    rows.balances = [(account_id, balances[account_id]) for account_id in sorted(changed)]
    return rows


def _again(seq: int, order_id: str, account_id: str, amount: int, seen: _Known) -> ItemEnd:
    """An order decided before: replayed when it matches, else refused (nothing written)."""
    seen_account, seen_amount, status, detail = seen
    if seen_account == account_id and seen_amount == amount:
        return (seq, "replayed", status, detail)
    return (
        seq,
        "failed",
        "idempotency_key_reused",
        f"order {order_id!r} was already decided for account "
        f"{seen_account!r} and amount {seen_amount}",
    )
