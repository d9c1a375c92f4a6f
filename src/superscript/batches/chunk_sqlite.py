"""A fee chunk on SQLite: a handful of statements straight to aiosqlite, in the caller's
``BEGIN IMMEDIATE`` transaction (``Ledger.in_fee_transaction``).

SQLite has one writer at a time, so what is read here stays true until commit: the
pending items, their accounts' balances and any outcomes already stored for their orders.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.chunk_common import ChunkRead, largest_group, tally
from superscript.batches.models import Counts
from superscript.ledger import Decider, FeeOutcome
from superscript.ledger.bulk import ENTRY_COLUMNS, OUTCOME_COLUMNS, ChunkRows, decide_chunk
from superscript.ledger.models import decision_time

_PENDING = "FROM batch_items WHERE batch_id = ? AND seq >= ? AND seq < ? AND status = 'pending'"
_ITEMS = f"SELECT seq, order_id, account_id, amount {_PENDING} ORDER BY seq"
_BALANCES = (
    f"SELECT account_id, balance FROM accounts WHERE account_id IN (SELECT account_id {_PENDING})"
)
_OUTCOME_COLUMNS = ", ".join(OUTCOME_COLUMNS)
_STORED = (
    f"SELECT {_OUTCOME_COLUMNS} FROM fee_outcomes WHERE order_id IN (SELECT order_id {_PENDING})"
)
_INSERT_OUTCOMES = (
    f"INSERT INTO fee_outcomes ({_OUTCOME_COLUMNS}) "
    f"VALUES ({', '.join('?' for _ in OUTCOME_COLUMNS)})"
)
_INSERT_ENTRIES = (
    f"INSERT INTO entries ({', '.join(ENTRY_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ENTRY_COLUMNS)})"
)
_UPDATE_BALANCES = "UPDATE accounts SET balance = ? WHERE account_id = ?"
_MARK_ONE = (
    "UPDATE batch_items SET status = ?, outcome = ?, exit_code = NULL, detail = ? "
    "WHERE batch_id = ? AND seq = ?"
)
_MARK_REST = (
    "UPDATE batch_items SET status = ?, outcome = ?, exit_code = NULL, detail = ? "
    "WHERE batch_id = ? AND seq >= ? AND seq < ? AND status = 'pending'"
)
_COUNT = (
    "UPDATE batches SET succeeded = succeeded + ?, replayed = replayed + ?, "
    "failed = failed + ? WHERE batch_id = ?"
)
# The last items decided complete their batch at once (readers need not wait for the
# workflow's closing step, which then finds nothing to change).
_COMPLETE = (
    "UPDATE batches SET status = 'completed', completed_at = CURRENT_TIMESTAMP "
    "WHERE batch_id = ? AND status = 'running' AND succeeded + replayed + failed >= total"
)


async def apply_chunk(
    conn: AsyncConnection, batch_id: str, start: int, end: int, decider: Decider
) -> Counts:
    """Decide the pending items ``start..end`` and write every row they change."""
    raw = await conn.get_raw_connection()
    db: Any = raw.driver_connection  # aiosqlite.Connection, inside the caller's transaction
    span = (batch_id, start, end)
    read = ChunkRead(
        orders=list(await db.execute_fetchall(_ITEMS, span)),
        balances=dict(await db.execute_fetchall(_BALANCES, span)),
        stored={row[0]: _outcome(row) for row in await db.execute_fetchall(_STORED, span)},
    )
    if not read.orders:
        return Counts()
    decided_at = decision_time()
    # The text SQLAlchemy's SQLite DateTime stores, so the outcome reads back the same.
    stored_at = decided_at.strftime("%Y-%m-%d %H:%M:%S.%f")
    rows = decide_chunk(read.orders, read.balances, read.stored, decider, decided_at, stored_at)
    try:
        await _write(db, batch_id, (start, end), rows)
    except sqlite3.IntegrityError as exc:
        # As SQLAlchemy would raise it: the ledger's retry knows this one.
        raise IntegrityError(_INSERT_OUTCOMES, None, exc) from exc
    counts = tally(rows.ends)
    await db.execute(_COUNT, (counts.succeeded, counts.replayed, counts.failed, batch_id))
    await db.execute(_COMPLETE, (batch_id,))
    return counts


def _outcome(row: Sequence[Any]) -> FeeOutcome:
    """A stored outcome; SQLite gives ``decided_at`` back as naive UTC text."""
    data = dict(zip(OUTCOME_COLUMNS, row, strict=True))
    data["decided_at"] = _utc(data["decided_at"])
    return FeeOutcome.model_validate(data)


def _utc(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text).replace(tzinfo=UTC)


async def _write(db: Any, batch_id: str, span: tuple[int, int], rows: ChunkRows) -> None:
    """Outcomes, journal, balances (one update per account), then the items' ends."""
    if rows.outcomes:
        await db.executemany(_INSERT_OUTCOMES, rows.outcomes)
    if rows.entries:
        await db.executemany(_INSERT_ENTRIES, rows.entries)
    if rows.balances:
        await db.executemany(
            _UPDATE_BALANCES, [(balance, account_id) for account_id, balance in rows.balances]
        )
    rest, singles = largest_group(rows.ends)
    if singles:
        await db.executemany(
            _MARK_ONE,
            [(status, outcome, detail, batch_id, seq) for seq, status, outcome, detail in singles],
        )
    status, outcome, detail = rest
    await db.execute(_MARK_REST, (status, outcome, detail, batch_id, *span))
