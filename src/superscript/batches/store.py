"""Storing batches and their items, and applying fee items chunk by chunk, exactly once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.models import (
    Batch,
    BatchItemView,
    BatchKind,
    Counts,
    FeeItem,
    ItemDone,
    ItemStatus,
    PlannedRun,
    ScriptItem,
    ScriptPlan,
    batch_workflow_id,
)
from superscript.batches.schema import batch_items, batches
from superscript.ledger import Applied, Decider, FeeOrder, IdempotencyKeyReused, Ledger
from superscript.ledger.apply import apply_orders_in
from superscript.scripts.models import script_workflow_id
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import Registry, ScriptNotFound

INSERT_ROWS_PER_STATEMENT = 5_000
CONFLICT_RETRIES = 3


def items_digest(kind: BatchKind, script: str | None, items: Iterable[FeeItem | ScriptItem]) -> str:
    """A fingerprint of what was submitted: the same batch ID must mean the same items."""
    digest = hashlib.sha256(f"{kind}\n{script or ''}\n".encode())
    for item in items:
        digest.update(json.dumps(item.model_dump(), separators=(",", ":")).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _item_row(batch_id: str, seq: int, item: FeeItem | ScriptItem) -> dict[str, object]:
    row: dict[str, object] = {
        "batch_id": batch_id,
        "seq": seq,
        "order_id": item.order_id,
        "status": "pending",
        "account_id": None,
        "amount": None,
        "args": None,
    }
    if isinstance(item, FeeItem):
        row["account_id"] = item.account_id
        row["amount"] = item.amount
    else:
        row["args"] = json.dumps(item.args)
    return row


class BatchStore:
    """Batches in the ledger's database, so item outcomes commit with the money they move."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def create(
        self,
        batch_id: str,
        kind: BatchKind,
        script: str | None,
        items: Sequence[FeeItem | ScriptItem],
    ) -> tuple[Batch, bool]:
        """Store a new batch, or return the existing one (False) if the items are the same.

        Raises ``IdempotencyKeyReused`` when ``batch_id`` was used for other items.
        """
        digest = items_digest(kind, script, items)
        existing = await self.get(batch_id)
        if existing is None:
            try:
                async with self.ledger.write() as conn:
                    await conn.execute(
                        batches.insert().values(
                            batch_id=batch_id,
                            kind=kind,
                            script=script,
                            total=len(items),
                            items_digest=digest,
                            workflow_id=batch_workflow_id(batch_id),
                            status="running",
                        )
                    )
                    for start in range(0, len(items), INSERT_ROWS_PER_STATEMENT):
                        chunk = items[start : start + INSERT_ROWS_PER_STATEMENT]
                        await conn.execute(
                            batch_items.insert(),
                            [
                                _item_row(batch_id, start + offset, item)
                                for offset, item in enumerate(chunk)
                            ],
                        )
                created = await self.get(batch_id)
                assert created is not None
                return created, True
            except IntegrityError:
                existing = await self.get(batch_id)
                if existing is None:
                    raise
        async with self.ledger.engine.connect() as conn:
            stored_digest = await conn.scalar(
                select(batches.c.items_digest).where(batches.c.batch_id == batch_id)
            )
        if stored_digest != digest:
            raise IdempotencyKeyReused(
                f"batch {batch_id!r} was already submitted with other items; nothing was changed"
            )
        return existing, False

    async def get(self, batch_id: str) -> Batch | None:
        async with self.ledger.engine.connect() as conn:
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

    async def items(
        self, batch_id: str, status: ItemStatus | None, limit: int, after: int | None
    ) -> list[BatchItemView]:
        """A page of items in order; ``after`` is the last ``seq`` of the previous page."""
        query = select(batch_items).where(batch_items.c.batch_id == batch_id)
        if status is not None:
            query = query.where(batch_items.c.status == status)
        if after is not None:
            query = query.where(batch_items.c.seq > after)
        query = query.order_by(batch_items.c.seq).limit(limit)
        async with self.ledger.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        views = []
        for row in rows:
            data = row._asdict()
            data["args"] = None if data["args"] is None else json.loads(data["args"])
            views.append(BatchItemView.model_validate(data))
        return views

    async def pending_count(self, batch_id: str) -> int:
        async with self.ledger.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(batch_items)
                .where(batch_items.c.batch_id == batch_id, batch_items.c.status == "pending")
            )
        return int(count or 0)

    async def complete(self, batch_id: str) -> Batch:
        async with self.ledger.write() as conn:
            await conn.execute(
                update(batches)
                .where(batches.c.batch_id == batch_id, batches.c.status == "running")
                .values(status="completed", completed_at=func.now())
            )
        batch = await self.get(batch_id)
        assert batch is not None
        return batch

    async def record_items(self, batch_id: str, done: Sequence[ItemDone]) -> Counts:
        async with self.ledger.write() as conn:
            return await _finish_items(conn, batch_id, done)

    # Script batches ------------------------------------------------------------------

    async def plan_script_chunk(
        self, batch_id: str, start: int, end: int, registry: Registry, runs: ScriptRuns
    ) -> ScriptPlan:
        """Claim each pending item's key with its args; decide what needs no run at all.

        A key claimed with other args fails as ``idempotency_key_reused``; a key whose run
        is already decided is ``replayed`` with that outcome; the rest are to be started.
        """
        batch = await self.get(batch_id)
        assert batch is not None and batch.script is not None
        script = batch.script
        async with self.ledger.engine.connect() as conn:
            rows = await _pending_items(
                conn, batch_id, start, end, batch_items.c.order_id, batch_items.c.args
            )
        decided: list[ItemDone] = []
        planned: list[PlannedRun] = []
        try:
            spec = registry.get(script)
        except ScriptNotFound as exc:
            decided = [
                ItemDone(seq=seq, status="failed", outcome=exc.code, detail=str(exc))
                for seq, _order_id, _args in rows
            ]
            counts = await self.record_items(batch_id, decided)
            return ScriptPlan(
                script=script, max_attempts=1, timeout_seconds=1, runs=[], counts=counts
            )
        for seq, order_id, encoded in rows:
            args: list[str] = json.loads(encoded)
            try:
                record = await runs.claim(
                    script, order_id, args, script_workflow_id(script, order_id)
                )
            except IdempotencyKeyReused as exc:
                decided.append(
                    ItemDone(seq=seq, status="failed", outcome=exc.code, detail=exc.detail)
                )
                continue
            if record.result is not None:
                decided.append(
                    ItemDone(
                        seq=seq,
                        status="replayed",
                        outcome=record.result.status,
                        exit_code=record.result.exit_code,
                    )
                )
            else:
                planned.append(PlannedRun(seq=seq, order_id=order_id, args=args))
        counts = await self.record_items(batch_id, decided)
        return ScriptPlan(
            script=script,
            max_attempts=spec.max_attempts,
            timeout_seconds=spec.timeout_seconds,
            runs=planned,
            counts=counts,
        )

    # Fee batches ---------------------------------------------------------------------

    async def apply_fee_chunk(
        self, batch_id: str, start: int, end: int, decider: Decider
    ) -> Counts:
        """Apply the still-pending items ``start..end`` in one transaction.

        Items already decided (by an earlier attempt of this very activity) are skipped, and
        every order is applied through the ledger's unique key, so a retry changes nothing.
        """
        for _attempt in range(CONFLICT_RETRIES):
            try:
                async with self.ledger.write() as conn:
                    return await _apply_fee_items(conn, batch_id, start, end, decider)
            except IntegrityError:
                # A concurrent caller recorded one of these orders first (PostgreSQL):
                # all of this was rolled back, and the next attempt replays that order.
                continue
        raise RuntimeError(f"batch {batch_id!r} items {start}..{end} kept conflicting")


async def _apply_fee_items(
    conn: AsyncConnection, batch_id: str, start: int, end: int, decider: Decider
) -> Counts:
    rows = await _pending_items(
        conn,
        batch_id,
        start,
        end,
        batch_items.c.order_id,
        batch_items.c.account_id,
        batch_items.c.amount,
    )
    orders = [
        FeeOrder(order_id=order_id, account_id=account_id, amount=amount)
        for _seq, order_id, account_id, amount in rows
    ]
    results = await apply_orders_in(conn, orders, decider)
    done = [_item_done(row.seq, result) for row, result in zip(rows, results, strict=True)]
    return await _finish_items(conn, batch_id, done)


async def _pending_items(
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


def _item_done(seq: int, result: Applied | IdempotencyKeyReused) -> ItemDone:
    """What one order's result means for its batch item."""
    if isinstance(result, IdempotencyKeyReused):
        return ItemDone(seq=seq, status="failed", outcome=result.code, detail=result.detail)
    failure = result.outcome.failure
    status: Literal["succeeded", "replayed", "failed"]
    if not result.applied:
        status = "replayed"
    elif failure is None:
        status = "succeeded"
    else:
        status = "failed"
    return ItemDone(
        seq=seq,
        status=status,
        outcome=result.outcome.status,
        detail=None if failure is None else failure.detail,
    )


async def _finish_items(conn: AsyncConnection, batch_id: str, done: Sequence[ItemDone]) -> Counts:
    """Mark items decided and move the batch's counters, in the caller's transaction.

    Only items still pending change, so recording the same items twice counts them once.
    """
    if not done:
        return Counts()
    still_pending = set(
        (
            await conn.execute(
                select(batch_items.c.seq).where(
                    batch_items.c.batch_id == batch_id,
                    batch_items.c.seq.in_([item.seq for item in done]),
                    batch_items.c.status == "pending",
                )
            )
        ).scalars()
    )
    fresh = [item for item in done if item.seq in still_pending]
    if not fresh:
        return Counts()
    await conn.execute(
        update(batch_items)
        .where(batch_items.c.batch_id == batch_id, batch_items.c.seq == bindparam("b_seq"))
        .values(
            status=bindparam("b_status"),
            outcome=bindparam("b_outcome"),
            exit_code=bindparam("b_exit_code"),
            detail=bindparam("b_detail"),
        ),
        [
            {
                "b_seq": item.seq,
                "b_status": item.status,
                "b_outcome": item.outcome,
                "b_exit_code": item.exit_code,
                "b_detail": item.detail,
            }
            for item in fresh
        ],
    )
    counts = Counts(
        succeeded=sum(1 for item in fresh if item.status == "succeeded"),
        replayed=sum(1 for item in fresh if item.status == "replayed"),
        failed=sum(1 for item in fresh if item.status == "failed"),
    )
    await conn.execute(
        update(batches)
        .where(batches.c.batch_id == batch_id)
        .values(
            succeeded=batches.c.succeeded + counts.succeeded,
            replayed=batches.c.replayed + counts.replayed,
            failed=batches.c.failed + counts.failed,
        )
    )
    return counts
