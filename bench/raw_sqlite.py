"""(h) raw stdlib ``sqlite3`` writing (d)'s rows: the disk's limit for fee batches on SQLite.

A fresh file under the temp dir, made by the project's own migration (so the tables,
indexes and constraints are the ledger's), opened with the ledger's pragmas (WAL,
``synchronous=NORMAL``), written by one connection in a thread: no SQLAlchemy, no
Temporal, no HTTP. What is written is described in ``bench/raw_rows.py``.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time

from bench.raw_rows import (
    RawBatch,
    RawTimes,
    add_raw_rows,
    decide,
    now,
    raw_size,
)
from bench.report import Report
from bench.sizes import Sizes
from bench.stack import ACCOUNT_BALANCE, Stack
from superscript.batches.storing import ITEM_COLUMNS
from superscript.db.engine import SQLITE_BUSY_TIMEOUT_MS, create_engine, is_sqlite
from superscript.db.metadata import IN_LIST_SIZE
from superscript.db.migrate import migrate
from superscript.ledger.bulk import ENTRY_COLUMNS, OUTCOME_COLUMNS

# How the SQLite dialect of SQLAlchemy stores a DateTime: the ledger's rows look the same.
SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"


def _insert(table: str, columns: tuple[str, ...]) -> str:
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})"


INSERT_ITEMS = _insert("batch_items", ITEM_COLUMNS)
INSERT_OUTCOMES = _insert("fee_outcomes", OUTCOME_COLUMNS)
INSERT_ENTRIES = _insert("entries", ENTRY_COLUMNS)


async def measure_raw_sqlite(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(h) raw stdlib sqlite3: (d)'s rows on a fresh file with the ledger's pragmas."""
    path = stack.tmp / f"raw-sqlite-{stack.run_id}.db"
    engine = create_engine(f"sqlite:///{path}")
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    warm = RawBatch.fresh(stack, "h-warm", sizes.warmup)
    batch = RawBatch.fresh(stack, "h", raw_size(sizes))
    # Used by one thread at a time: the setup's, then the timed one's.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await asyncio.to_thread(_prepare, conn, stack.accounts, warm)
        async with stack.cpu(report, "h"):
            times = await asyncio.to_thread(_timed, conn, batch)
    finally:
        conn.close()
    on_sqlite = is_sqlite(stack.the_ledger().engine)
    add_raw_rows(report, "h", "sqlite3", times, None if on_sqlite else "(d) ran on PostgreSQL")


def _prepare(conn: sqlite3.Connection, accounts: list[str], warm: RawBatch) -> None:
    """The ledger's pragmas, the accounts, and a small untimed batch through the same path."""
    conn.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(
        "INSERT INTO accounts (account_id, balance, opening_balance) VALUES (?, ?, ?)",
        [(account, ACCOUNT_BALANCE, ACCOUNT_BALANCE) for account in accounts],
    )
    conn.execute("COMMIT")
    _store(conn, warm)
    _apply(conn, warm)


def _timed(conn: sqlite3.Connection, batch: RawBatch) -> RawTimes:
    started = time.perf_counter()
    _store(conn, batch)
    stored = time.perf_counter()
    charged = _apply(conn, batch)
    applied = time.perf_counter()
    return RawTimes(len(batch.orders), stored - started, applied - stored, charged)


def _store(conn: sqlite3.Connection, batch: RawBatch) -> None:
    """The batch row and its pending items, in one transaction (as ``POST /batches``)."""
    conn.execute("BEGIN IMMEDIATE")
    conn.execute(
        "INSERT INTO batches (batch_id, kind, total, items_digest, workflow_id, status) "
        "VALUES (?, 'fee', ?, ?, ?, 'running')",
        (batch.batch_id, len(batch.orders), "0" * 64, batch.workflow_id),
    )
    conn.executemany(INSERT_ITEMS, batch.item_rows())
    conn.execute("COMMIT")


def _apply(conn: sqlite3.Connection, batch: RawBatch) -> int:
    """Every chunk in a transaction of its own; how many outcomes were written."""
    written = 0
    for start, end in batch.spans():
        orders = batch.orders[start:end]
        conn.execute("BEGIN IMMEDIATE")
        decided = decide(
            orders,
            _balances(conn, sorted({account for _, account, _ in orders})),
            batch.workflow_id,
            now().strftime(SQLITE_DATETIME),
        )
        conn.executemany(INSERT_OUTCOMES, decided.outcomes)
        conn.executemany(INSERT_ENTRIES, decided.entries)
        conn.executemany(
            "UPDATE accounts SET balance = ? WHERE account_id = ?",
            [(balance, account) for account, balance in sorted(decided.balances.items())],
        )
        conn.execute(
            "UPDATE batch_items SET status = 'succeeded', outcome = 'charged' "
            "WHERE batch_id = ? AND seq >= ? AND seq < ? AND status = 'pending'",
            (batch.batch_id, start, end),
        )
        conn.execute(
            "UPDATE batches SET succeeded = succeeded + ? WHERE batch_id = ?",
            (len(orders), batch.batch_id),
        )
        conn.execute("COMMIT")
        written += len(decided.outcomes)
    return written


def _balances(conn: sqlite3.Connection, accounts: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for start in range(0, len(accounts), IN_LIST_SIZE):
        part = accounts[start : start + IN_LIST_SIZE]
        marks = ", ".join("?" for _ in part)
        rows = conn.execute(
            f"SELECT account_id, balance FROM accounts WHERE account_id IN ({marks})", part
        )
        found.update(rows)
    return found
