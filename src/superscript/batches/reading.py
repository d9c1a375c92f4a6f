"""Reading batches: one batch's progress, a page of its items, the pending ones of a span."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.models import Batch, BatchItemView, ItemStatus
from superscript.batches.schema import batch_items, batches
from superscript.ledger import Ledger


async def get_batch(ledger: Ledger, batch_id: str) -> Batch | None:
    async with ledger.engine.connect() as conn:
        row = (
            await conn.execute(
                select(
                    batches.c.batch_id,
                    batches.c.kind,
                    batches.c.script,
                    batches.c.status,
                    batches.c.total,
                    batches.c.succeeded,
                    batches.c.replayed,
                    batches.c.failed,
                    batches.c.workflow_id,
                ).where(batches.c.batch_id == batch_id)
            )
        ).first()
    return None if row is None else Batch.model_validate(row._asdict())


async def item_page(
    ledger: Ledger, batch_id: str, status: ItemStatus | None, limit: int, after: int | None
) -> list[BatchItemView]:
    """A page of items in order; ``after`` is the last ``seq`` of the previous page."""
    query = select(batch_items).where(batch_items.c.batch_id == batch_id)
    if status is not None:
        query = query.where(batch_items.c.status == status)
    if after is not None:
        query = query.where(batch_items.c.seq > after)
    query = query.order_by(batch_items.c.seq).limit(limit)
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    views = []
    for row in rows:
        data = row._asdict()
        data["args"] = None if data["args"] is None else json.loads(data["args"])
        views.append(BatchItemView.model_validate(data))
    return views


async def pending_items(
    conn: AsyncConnection, batch_id: str, start: int, end: int, *columns: Any
) -> Sequence[Any]:
    """``seq`` and ``columns`` of the items ``start..end`` still pending, in order."""
    result = await conn.execute(
        select(batch_items.c.seq, *columns)
        .where(
            batch_items.c.batch_id == batch_id,
            batch_items.c.seq >= start,
            batch_items.c.seq < end,
            batch_items.c.status == "pending",
        )
        .order_by(batch_items.c.seq)
    )
    return result.all()
