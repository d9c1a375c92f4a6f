"""Reading decided script runs in pages (``GET /scripts/{name}/runs``) and by order.

Pages follow ``db.paging``, newest first along ``ix_script_runs_*``: a run's record is
decided once (its ``decided_at`` set with its result), so a page never moves under a
reader except by new runs arriving at the front.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Select, select

from superscript.db.paging import Keyset, Page, split_page
from superscript.ledger import Ledger
from superscript.scripts.models import ScriptRunResult
from superscript.scripts.schema import script_runs

RUNS = Keyset((script_runs.c.decided_at, script_runs.c.order_id), descending=True)

RunStatus = Literal["succeeded", "failed"]


def _result(row: Any) -> ScriptRunResult:
    return ScriptRunResult.model_validate_json(row.result)


def runs_query(
    script: str, after: str | None, limit: int, status: RunStatus | None = None
) -> Select[Any]:
    """The script's decided runs, newest first."""
    query = select(script_runs.c.order_id, script_runs.c.result).where(
        script_runs.c.script == script, script_runs.c.decided_at.is_not(None)
    )
    if status is not None:
        query = query.where(script_runs.c.status == status)
    return RUNS.page(query, after, limit, scope=[script_runs.c.script == script])


async def runs_page(
    ledger: Ledger, script: str, after: str | None, limit: int, status: RunStatus | None = None
) -> Page[ScriptRunResult]:
    """A page of ``runs_query``."""
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(runs_query(script, after, limit, status))).all()
    return split_page(rows, limit, _result, "order_id")


async def runs_of_order(ledger: Ledger, order_id: str) -> list[tuple[Any, ScriptRunResult | None]]:
    """Every script's record for this order ID: (its row, its result once decided)."""
    query = (
        select(script_runs)
        .where(script_runs.c.order_id == order_id)
        .order_by(script_runs.c.created_at, script_runs.c.script)
    )
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [(row, None if row.result is None else _result(row)) for row in rows]
