"""Every list query is an index range, never a scan and a sort: asserted on the plans.

A page must stay fast at a million rows; that is a property of the plan, not a timing.
The tables get a few thousand rows (and PostgreSQL its statistics) first, each filter
matching half or a third of them, so that the planner chooses as it would for a large
ledger (a filter that matches a handful of rows is rightly read and sorted). Then each
query of the list routes is explained: SQLite's ``EXPLAIN QUERY PLAN`` must search or
scan an index and never build a temporary B-tree for the order; PostgreSQL's
``EXPLAIN`` must use an index and neither a sequential scan nor a sort.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Select, insert, select, text

from superscript.batches.listing import batches_query
from superscript.batches.schema import batch_items, batches
from superscript.ledger import Ledger, schema
from superscript.ledger.listing import accounts_query, entries_query, orders_query
from superscript.scripts.listing import runs_query
from superscript.scripts.schema import script_runs

ROWS = 6_000
START = datetime(2030, 1, 1, tzinfo=UTC)


async def fill(ledger: Ledger) -> None:
    """A few thousand rows in every listed table, then fresh planner statistics."""
    ids = [f"plan-{n:05d}" for n in range(ROWS)]
    at = [START + timedelta(seconds=n // 7) for n in range(ROWS)]
    async with ledger.write() as conn:
        await conn.execute(
            insert(schema.accounts),
            # The two accounts of the journal opened with what it took: the books balance.
            [
                {"account_id": i, "balance": 1, "opening_balance": 1 + (ROWS // 2 if n < 2 else 0)}
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(
            insert(schema.fee_outcomes),
            [
                {
                    "order_id": i,
                    "account_id": ids[n % 2],
                    "amount": 1,
                    "status": ("charged", "insufficient_funds", "account_not_found")[n % 3],
                    "workflow_id": f"BATCH-WF-plan-{n % 2}",
                    "decided_at": at[n],
                }
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(
            insert(schema.entries),
            [
                {"account_id": ids[n % 2], "order_id": i, "amount": 1, "kind": "fee"}
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(
            insert(batches),
            [
                {
                    "batch_id": i,
                    "kind": ("fee", "script")[n % 2],
                    "total": 1,
                    "items_digest": "0" * 64,
                    "workflow_id": f"BATCH-WF-{i}",
                    "status": ("running", "completed")[n % 2],
                    "created_at": at[n],
                }
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(
            insert(batch_items),
            [
                {"batch_id": ids[n % 2], "seq": n, "order_id": i, "status": "succeeded"}
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(
            insert(script_runs),
            [
                {
                    "script": f"s{n % 2}",
                    "order_id": i,
                    "args": "[]",
                    "args_hash": "0" * 64,
                    "workflow_id": f"SCRIPT-WF-s{n % 2}/{i}",
                    "status": ("succeeded", "failed")[n // 2 % 2],
                    "result": "{}",
                    "decided_at": at[n],
                }
                for n, i in enumerate(ids)
            ],
        )
        await conn.execute(text("ANALYZE"))


def queries() -> dict[str, Select[object]]:
    """Each query the list routes and an order's history run, with a cursor where one goes."""
    return {
        "accounts": accounts_query(None, 100),
        "accounts after": accounts_query("plan-01000", 100),
        "entries": entries_query("plan-00001", 101, 100),
        "orders": orders_query(None, 100),
        "orders after": orders_query("plan-01000", 100),
        "orders of an account": orders_query("plan-01000", 100, account_id="plan-00001"),
        "orders by status": orders_query("plan-01000", 100, status="charged"),
        "orders of a batch": orders_query("plan-01000", 100, decided_by="BATCH-WF-plan-1"),
        "batches": batches_query("plan-01000", 100),
        "batches by status": batches_query("plan-01000", 100, status="running"),
        "batches by kind": batches_query("plan-01000", 100, kind="script"),
        "runs": runs_query("s1", "plan-01003", 100),
        "runs by status": runs_query("s1", "plan-01003", 100, status="failed"),
        "an order's batches": select(batch_items).where(batch_items.c.order_id == "plan-00042"),
        "an order's entries": select(schema.entries).where(
            schema.entries.c.order_id == "plan-00042"
        ),
        "an order's runs": select(script_runs).where(script_runs.c.order_id == "plan-00042"),
    }


async def plan(ledger: Ledger, query: Select[object]) -> str:
    sql = str(query.compile(ledger.engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if ledger.is_sqlite else "EXPLAIN "
    async with ledger.engine.connect() as conn:
        rows = (await conn.exec_driver_sql(explain + sql)).all()
    return "\n".join(str(row[-1]) for row in rows)


def uses_an_index_only(ledger: Ledger, shown: str) -> bool:
    if ledger.is_sqlite:
        reads = [line for line in shown.splitlines() if line.startswith(("SCAN", "SEARCH"))]
        return (
            bool(reads)
            and all("INDEX" in line or "PRIMARY KEY" in line for line in reads)
            and "TEMP B-TREE" not in shown
        )
    return "Index" in shown and "Seq Scan" not in shown and "Sort" not in shown


async def test_every_list_query_is_an_index_range(ledger: Ledger) -> None:
    await fill(ledger)
    plans = {name: await plan(ledger, query) for name, query in queries().items()}

    wrong = {name: shown for name, shown in plans.items() if not uses_an_index_only(ledger, shown)}
    assert not wrong, "\n\n".join(f"{name}:\n{shown}" for name, shown in wrong.items())
