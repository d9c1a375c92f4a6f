"""A fee chunk on PostgreSQL: statements straight to asyncpg (COPY for the new rows), in
the caller's transaction (``Ledger.in_fee_transaction``).

The chunk's accounts are locked first (``FOR UPDATE``, sorted, as every writer of the
ledger locks them), and only then are its pending items and stored outcomes read: a
concurrent writer of one of them held an account's lock until it committed, so what it
decided is seen here and replayed. One that locked nothing (an unknown account) collides
on ``fee_outcomes``' unique key instead, and the ledger retries the whole chunk.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.chunk_common import ChunkRead, largest_group, tally
from superscript.batches.models import Counts
from superscript.ledger import Decider, FeeOutcome
from superscript.ledger.bulk import ENTRY_COLUMNS, OUTCOME_COLUMNS, ChunkRows, decide_chunk
from superscript.ledger.models import decision_time

_PENDING = "FROM batch_items WHERE batch_id = $1 AND seq >= $2 AND seq < $3 AND status = 'pending'"
_LOCK = (
    "SELECT account_id, balance FROM accounts "
    f"WHERE account_id IN (SELECT account_id {_PENDING}) ORDER BY account_id FOR UPDATE"
)
_ITEMS = f"SELECT seq, order_id, account_id, amount {_PENDING} ORDER BY seq"
_STORED = (
    f"SELECT {', '.join(OUTCOME_COLUMNS)} FROM fee_outcomes "
    f"WHERE order_id IN (SELECT order_id {_PENDING})"
)
_UPDATE_BALANCES = (
    "UPDATE accounts AS a SET balance = u.balance "
    "FROM unnest($1::text[], $2::bigint[]) AS u(account_id, balance) "
    "WHERE a.account_id = u.account_id"
)
_MARK_SOME = (
    "UPDATE batch_items AS b SET status = u.status, outcome = u.outcome, exit_code = NULL, "
    "detail = u.detail FROM unnest($2::int[], $3::text[], $4::text[], $5::text[]) "
    "AS u(seq, status, outcome, detail) WHERE b.batch_id = $1 AND b.seq = u.seq"
)
_MARK_REST = (
    "UPDATE batch_items SET status = $4, outcome = $5, exit_code = NULL, detail = $6 "
    "WHERE batch_id = $1 AND seq >= $2 AND seq < $3 AND status = 'pending'"
)
# The counters, and the last items decided complete their batch at once.
_COUNT = (
    "UPDATE batches SET succeeded = succeeded + $2, replayed = replayed + $3, "
    "failed = failed + $4 WHERE batch_id = $1"
)
_COMPLETE = (
    "UPDATE batches SET status = 'completed', completed_at = now() "
    "WHERE batch_id = $1 AND status = 'running' AND succeeded + replayed + failed >= total"
)


async def apply_chunk(
    conn: AsyncConnection, batch_id: str, start: int, end: int, decider: Decider
) -> Counts:
    """Decide the pending items ``start..end`` and write every row they change."""
    # SQLAlchemy begins asyncpg's transaction at its first statement: this one.
    await conn.exec_driver_sql("SELECT 1")
    raw = await conn.get_raw_connection()
    db: Any = raw.driver_connection
    assert db.is_in_transaction()
    try:
        return await _apply(db, batch_id, start, end, decider)
    except asyncpg.IntegrityConstraintViolationError as exc:
        # As SQLAlchemy would raise it: the ledger's retry knows this one.
        raise IntegrityError("fee chunk", None, exc) from exc


async def _apply(db: Any, batch_id: str, start: int, end: int, decider: Decider) -> Counts:
    span = (batch_id, start, end)
    balances = {row[0]: row[1] for row in await db.fetch(_LOCK, *span)}
    read = ChunkRead(
        orders=[tuple(row) for row in await db.fetch(_ITEMS, *span)],
        balances=balances,
        stored={
            row[0]: FeeOutcome.model_validate(dict(row)) for row in await db.fetch(_STORED, *span)
        },
    )
    if not read.orders:
        return Counts()
    decided_at = decision_time()
    rows = decide_chunk(read.orders, read.balances, read.stored, decider, decided_at, decided_at)
    await _write(db, batch_id, (start, end), rows)
    counts = tally(rows.ends)
    await db.execute(_COUNT, batch_id, counts.succeeded, counts.replayed, counts.failed)
    await db.execute(_COMPLETE, batch_id)
    return counts


async def _write(db: Any, batch_id: str, span: tuple[int, int], rows: ChunkRows) -> None:
    """Outcomes and journal by COPY, balances and items' ends by set-based updates."""
    if rows.outcomes:
        await db.copy_records_to_table(
            "fee_outcomes", records=rows.outcomes, columns=OUTCOME_COLUMNS
        )
    if rows.entries:
        await db.copy_records_to_table("entries", records=rows.entries, columns=ENTRY_COLUMNS)
    if rows.balances:
        await db.execute(
            _UPDATE_BALANCES,
            [account_id for account_id, _ in rows.balances],
            [balance for _, balance in rows.balances],
        )
    rest, others = largest_group(rows.ends)
    if others:
        await db.execute(
            _MARK_SOME,
            batch_id,
            [end[0] for end in others],
            [end[1] for end in others],
            [end[2] for end in others],
            [end[3] for end in others],
        )
    await db.execute(_MARK_REST, batch_id, *span, *rest)
