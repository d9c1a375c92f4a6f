"""(h) and (i): the rows a fee batch writes, for the raw baselines, and the rows they report.

A raw baseline writes what a fee batch writes for the same orders, with the driver alone:
the batch and its items (what ``POST /batches`` stores), then per chunk of 2,000 orders,
in one transaction, the accounts' balances read, each order's outcome row and journal
entry, the new balances, the items' status (one range update, as the batch does) and the
batch's counters. Only the row values are worked out here; the drivers are in
``bench/raw_sqlite.py`` and ``bench/raw_asyncpg.py``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from bench.report import Report, Row, at_least, ratio
from bench.sizes import Sizes
from bench.stack import Stack

# The baseline: 2,000 orders per transaction (the batch's chunk size today).
RAW_CHUNK_SIZE = 2_000
RAW_GOAL = 0.5
# An order ID, its account, its amount.
Order = tuple[str, str, int]


@dataclass(frozen=True)
class RawBatch:
    """Fresh orders shaped like (d)'s, and the batch that holds them."""

    batch_id: str
    orders: list[Order]
    workflow_id: str

    @classmethod
    def fresh(cls, stack: Stack, tag: str, n: int) -> RawBatch:
        accounts = stack.accounts
        orders = [(f"{stack.run_id}-{tag}-{i}", accounts[i % len(accounts)], 1) for i in range(n)]
        batch_id = f"{stack.run_id}-batch-{tag}"
        return cls(batch_id, orders, f"BATCH-WF-{batch_id}")

    def item_rows(self) -> list[tuple[object, ...]]:
        """``batch_items`` rows in ``superscript.batches.storing.ITEM_COLUMNS`` order."""
        return [
            (self.batch_id, seq, order_id, "pending", account_id, amount, None)
            for seq, (order_id, account_id, amount) in enumerate(self.orders)
        ]

    def spans(self) -> list[tuple[int, int]]:
        total = len(self.orders)
        return [
            (start, min(start + RAW_CHUNK_SIZE, total)) for start in range(0, total, RAW_CHUNK_SIZE)
        ]


@dataclass
class Decided:
    """One chunk's rows: outcomes, journal entries, the new balances of its accounts."""

    outcomes: list[tuple[object, ...]]
    entries: list[tuple[object, ...]]
    balances: dict[str, int]


def decide(
    orders: list[Order], balances: dict[str, int], workflow_id: str, decided_at: object
) -> Decided:
    """Charge each order in memory, as the ledger does; every account holds plenty."""
    outcomes: list[tuple[object, ...]] = []
    entries: list[tuple[object, ...]] = []
    for order_id, account_id, amount in orders:
        balance = balances[account_id] - amount
        if balance < 0:
            raise RuntimeError(f"raw baseline: account {account_id} ran out")
        balances[account_id] = balance
        outcomes.append(
            (order_id, account_id, amount, "charged", balance, None, workflow_id, None, decided_at)
        )
        entries.append((account_id, order_id, amount, "fee", balance))
    return Decided(outcomes, entries, balances)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True)
class RawTimes:
    """How long a raw baseline took to store the items, and to apply the chunks."""

    orders: int
    store_seconds: float
    chunks_seconds: float
    charged: int

    @property
    def items_per_s(self) -> float:
        return self.orders / self.store_seconds

    @property
    def chunks_per_s(self) -> float:
        return self.orders / self.chunks_seconds

    @property
    def orders_per_s(self) -> float:
        """The whole batch: its items stored, then its chunks applied."""
        return self.orders / (self.store_seconds + self.chunks_seconds)

    def figures(self) -> dict[str, object]:
        return {
            "orders": self.orders,
            "chunk_size": RAW_CHUNK_SIZE,
            "store_seconds": self.store_seconds,
            "chunks_seconds": self.chunks_seconds,
            "items_stored_per_s": self.items_per_s,
            "chunks_orders_per_s": self.chunks_per_s,
            "orders_per_s": self.orders_per_s,
            "charged": self.charged,
        }


def add_raw_rows(
    report: Report, key: str, driver: str, times: RawTimes | None, why_no_ratio: str | None
) -> None:
    """The items' rate, the chunks' rate, and the whole batch set against (d).

    ``times`` None: the baseline was not measured (the rows show ``-``). ``why_no_ratio``:
    why (d) is not set against it (it ran on another database, or this one is absent).
    """
    label = f"({key}) raw {driver}"
    report.figures[key] = None if times is None else times.figures()
    report.add(
        Row(
            f"{key}_items",
            f"{label}: items stored (batch_items)",
            None if times is None else times.items_per_s,
            "items/s",
        )
    )
    report.add(
        Row(
            f"{key}_chunks",
            f"{label}: chunks of {RAW_CHUNK_SIZE:,} applied",
            None if times is None else times.chunks_per_s,
            "orders/s",
        )
    )
    rate = None if times is None else times.orders_per_s
    share = None if why_no_ratio else ratio(report.value("d"), rate)
    note = why_no_ratio
    if times is not None and times.charged != times.orders:
        note = f"only {times.charged} of {times.orders} charged"
    report.add(
        Row(
            key,
            f"{label}: (d)'s rows, stored + applied",
            rate,
            "orders/s",
            f"fee batch / raw {driver}",
            share,
            f">= {RAW_GOAL}",
            None if why_no_ratio else at_least(share, RAW_GOAL),
            note,
        )
    )


def raw_size(sizes: Sizes) -> int:
    """As many orders as (d), so both sides of the ratio write the same rows."""
    return sizes.batch
