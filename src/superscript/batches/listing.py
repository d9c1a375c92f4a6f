"""Reading batches in pages (``GET /batches``) and the batches that carried one order.

Pages follow ``db.paging``, newest first along ``ix_batches_*``; an order's batches come
from ``ix_batch_items_order``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, select

from superscript.batches.models import Batch, ItemStatus
from superscript.batches.schema import batch_items, batches
from superscript.db.paging import Keyset, Page, split_page
from superscript.ledger import Ledger
from superscript.ledger.listing import utc

BATCHES = Keyset((batches.c.created_at, batches.c.batch_id), descending=True)


class BatchRow(Batch):
    """A batch's row: its counters and when it was made and completed."""

    model_config = ConfigDict(frozen=True)

    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def from_row(cls, row: Any) -> BatchRow:
        return cls.of(row._asdict())

    @classmethod
    def of(cls, values: dict[str, Any]) -> BatchRow:
        data = {name: values[name] for name in cls.model_fields}
        data["created_at"] = utc(data["created_at"])
        if data["completed_at"] is not None:
            data["completed_at"] = utc(data["completed_at"])
        return cls.model_validate(data)


class CarriedItem(BaseModel):
    """One batch's item of an order: what that batch reported for it."""

    model_config = ConfigDict(frozen=True)

    batch: BatchRow
    seq: int
    status: ItemStatus
    outcome: str | None
    exit_code: int | None
    detail: str | None


_COLUMNS = (
    batches.c.batch_id,
    batches.c.kind,
    batches.c.script,
    batches.c.status,
    batches.c.total,
    batches.c.succeeded,
    batches.c.replayed,
    batches.c.failed,
    batches.c.workflow_id,
    batches.c.created_at,
    batches.c.completed_at,
)


async def batch_row(ledger: Ledger, batch_id: str) -> BatchRow | None:
    async with ledger.engine.connect() as conn:
        row = (await conn.execute(select(*_COLUMNS).where(batches.c.batch_id == batch_id))).first()
    return None if row is None else BatchRow.from_row(row)


def batches_query(
    after: str | None, limit: int, *, status: str | None = None, kind: str | None = None
) -> Select[Any]:
    """Batches, newest first; ``status`` and ``kind`` each have their own index."""
    query = select(*_COLUMNS)
    if status is not None:
        query = query.where(batches.c.status == status)
    if kind is not None:
        query = query.where(batches.c.kind == kind)
    return BATCHES.page(query, after, limit)


async def batches_page(
    ledger: Ledger,
    after: str | None,
    limit: int,
    *,
    status: str | None = None,
    kind: str | None = None,
) -> Page[BatchRow]:
    """A page of ``batches_query``."""
    query = batches_query(after, limit, status=status, kind=kind)
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return split_page(rows, limit, BatchRow.from_row, "batch_id")


async def batches_of_order(ledger: Ledger, order_id: str) -> list[CarriedItem]:
    """Every batch item with this order ID (of any kind), in the batches' order."""
    query = (
        select(
            *_COLUMNS,
            batch_items.c.seq,
            batch_items.c.status.label("item_status"),
            batch_items.c.outcome,
            batch_items.c.exit_code,
            batch_items.c.detail,
        )
        .join(batches, batches.c.batch_id == batch_items.c.batch_id)
        .where(batch_items.c.order_id == order_id)
        .order_by(batches.c.created_at, batches.c.batch_id, batch_items.c.seq)
    )
    async with ledger.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_carried(row) for row in rows]


def _carried(row: Any) -> CarriedItem:
    data = row._asdict()
    return CarriedItem(
        batch=BatchRow.of(data),
        seq=data["seq"],
        status=data["item_status"],
        outcome=data["outcome"],
        exit_code=data["exit_code"],
        detail=data["detail"],
    )
