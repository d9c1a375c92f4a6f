"""(i) raw asyncpg writing (d)'s rows: the database's limit for fee batches on PostgreSQL.

Only with ``--database-url postgresql://...``. The tables are made by the project's own
migration in a scratch schema of this run (``bench_raw_<run id>``, dropped at the end), so
a shared database is fine. One connection, no SQLAlchemy, no Temporal, no HTTP: rows go
in by ``COPY``, balances by one ``UPDATE ... FROM unnest(...)``. What is written is
described in ``bench/raw_rows.py``.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

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
from superscript.db.engine import create_engine, is_sqlite
from superscript.db.migrate import migrate
from superscript.ledger.bulk import ENTRY_COLUMNS, OUTCOME_COLUMNS


async def measure_raw_asyncpg(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(i) raw asyncpg: (d)'s rows by COPY, in a scratch schema (PostgreSQL ledger only)."""
    if is_sqlite(stack.the_ledger().engine):
        add_raw_rows(report, "i", "asyncpg", None, "no --database-url postgresql://...")
        return
    url = stack.settings.database_url
    schema = f"bench_raw_{stack.run_id}"
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'CREATE SCHEMA "{schema}"')
        try:
            times = await _measure_in(stack, sizes, report, url, dsn, schema)
        finally:
            await admin.execute(f'DROP SCHEMA "{schema}" CASCADE')
    finally:
        await admin.close()
    add_raw_rows(report, "i", "asyncpg", times, None)


async def _measure_in(
    stack: Stack, sizes: Sizes, report: Report, url: str, dsn: str, schema: str
) -> RawTimes:
    """Migrate the scratch schema, then store and apply the rows in it."""
    search_path = {"search_path": schema}
    engine = create_engine(url, connect_args={"server_settings": search_path})
    try:
        await migrate(engine)
    finally:
        await engine.dispose()
    conn = await asyncpg.connect(dsn, server_settings=search_path)
    try:
        await conn.copy_records_to_table(
            "accounts",
            records=[(account, ACCOUNT_BALANCE, ACCOUNT_BALANCE) for account in stack.accounts],
            columns=("account_id", "balance", "opening_balance"),
        )
        warm = RawBatch.fresh(stack, "i-warm", sizes.warmup)
        await _store(conn, warm)
        await _apply(conn, warm)
        batch = RawBatch.fresh(stack, "i", raw_size(sizes))
        async with stack.cpu(report, "i"):
            started = time.perf_counter()
            await _store(conn, batch)
            stored = time.perf_counter()
            charged = await _apply(conn, batch)
            applied = time.perf_counter()
    finally:
        await conn.close()
    return RawTimes(len(batch.orders), stored - started, applied - stored, charged)


async def _store(conn: Any, batch: RawBatch) -> None:
    """The batch row and its pending items, in one transaction (as ``POST /batches``)."""
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO batches (batch_id, kind, total, items_digest, workflow_id, status) "
            "VALUES ($1, 'fee', $2, $3, $4, 'running')",
            batch.batch_id,
            len(batch.orders),
            "0" * 64,
            batch.workflow_id,
        )
        await conn.copy_records_to_table(
            "batch_items", records=batch.item_rows(), columns=ITEM_COLUMNS
        )


async def _apply(conn: Any, batch: RawBatch) -> int:
    """Every chunk in a transaction of its own; how many outcomes were written."""
    written = 0
    for start, end in batch.spans():
        orders = batch.orders[start:end]
        async with conn.transaction():
            # Locked in a fixed order, as the ledger does, so concurrent writers never deadlock.
            rows = await conn.fetch(
                "SELECT account_id, balance FROM accounts WHERE account_id = ANY($1::varchar[]) "
                "ORDER BY account_id FOR UPDATE",
                sorted({account for _, account, _ in orders}),
            )
            balances = {row["account_id"]: row["balance"] for row in rows}
            decided = decide(orders, balances, batch.workflow_id, now())
            await conn.copy_records_to_table(
                "fee_outcomes", records=decided.outcomes, columns=OUTCOME_COLUMNS
            )
            await conn.copy_records_to_table(
                "entries", records=decided.entries, columns=ENTRY_COLUMNS
            )
            changed = sorted(decided.balances.items())
            await conn.execute(
                "UPDATE accounts AS a SET balance = v.balance "
                "FROM unnest($1::varchar[], $2::bigint[]) AS v(account_id, balance) "
                "WHERE a.account_id = v.account_id",
                [account for account, _ in changed],
                [balance for _, balance in changed],
            )
            await conn.execute(
                "UPDATE batch_items SET status = 'succeeded', outcome = 'charged' "
                "WHERE batch_id = $1 AND seq >= $2 AND seq < $3 AND status = 'pending'",
                batch.batch_id,
                start,
                end,
            )
            await conn.execute(
                "UPDATE batches SET succeeded = succeeded + $1 WHERE batch_id = $2",
                len(orders),
                batch.batch_id,
            )
        written += len(decided.outcomes)
    return written
