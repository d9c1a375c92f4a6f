"""Storing batches and their items, and applying fee items chunk by chunk, exactly once."""

from __future__ import annotations

import hashlib
import json
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any, NamedTuple

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
from superscript.contract import ID_RE
from superscript.ledger import Applied, Decider, FeeOrder, IdempotencyKeyReused, Ledger
from superscript.ledger.apply import IN_LIST_SIZE, apply_orders_in
from superscript.scripts.models import script_workflow_id
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import Registry, ScriptNotFound

INSERT_ROWS_PER_STATEMENT = 5_000
CONFLICT_RETRIES = 3


# Identifiers of the contract are the same in JSON as in an f-string (no quote, no escape).
_PLAIN_ID = ID_RE
DIGEST_LINES_PER_UPDATE = 10_000


def _item_json(item: FeeItem | ScriptItem) -> str:
    """The item as compact JSON; for plain fee items without ``json.dumps`` (which was about
    half of what storing the items cost), byte for byte the same text."""
    if (
        isinstance(item, FeeItem)
        and type(item.amount) is int
        and _PLAIN_ID.fullmatch(item.order_id)
        and _PLAIN_ID.fullmatch(item.account_id)
    ):
        return (
            f'{{"order_id":"{item.order_id}","account_id":"{item.account_id}",'
            f'"amount":{item.amount}}}'
        )
    return json.dumps(item.model_dump(), separators=(",", ":"))


def items_digest(kind: BatchKind, script: str | None, items: Sequence[FeeItem | ScriptItem]) -> str:
    """A fingerprint of what was submitted: the same batch ID must mean the same items."""
    digest = hashlib.sha256(f"{kind}\n{script or ''}\n".encode())
    for start in range(0, len(items), DIGEST_LINES_PER_UPDATE):
        part = items[start : start + DIGEST_LINES_PER_UPDATE]
        digest.update("".join(_item_json(item) + "\n" for item in part).encode())
    return digest.hexdigest()


ITEM_COLUMNS = ("batch_id", "seq", "order_id", "status", "account_id", "amount", "args")
_INSERT_ITEMS_SQL = (
    f"INSERT INTO batch_items ({', '.join(ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ITEM_COLUMNS)})"
)


def _item_row(batch_id: str, seq: int, item: FeeItem | ScriptItem) -> tuple[object, ...]:
    if isinstance(item, FeeItem):
        return (batch_id, seq, item.order_id, "pending", item.account_id, item.amount, None)
    return (batch_id, seq, item.order_id, "pending", None, None, json.dumps(item.args))


async def _insert_items(conn: AsyncConnection, rows: list[tuple[object, ...]]) -> None:
    """Rows straight to the driver: COPY on PostgreSQL, one prepared statement on SQLite.

    SQLAlchemy's own executemany spends more time on each row's parameters than the
    database spends storing it. On PostgreSQL the caller's transaction has already run a
    statement, so COPY runs inside it (asyncpg begins SQLAlchemy's transaction lazily).
    """
    if conn.dialect.name == "postgresql":
        raw = await conn.get_raw_connection()
        driver = raw.driver_connection
        assert driver is not None
        await driver.copy_records_to_table(batch_items.name, records=rows, columns=ITEM_COLUMNS)
    else:
        await conn.exec_driver_sql(_INSERT_ITEMS_SQL, rows)


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
                        await _insert_items(
                            conn,
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
        ends = [ItemEnd(d.seq, d.status, d.outcome, d.exit_code, d.detail) for d in done]
        async with self.ledger.write() as conn:
            return await _finish_items(conn, batch_id, ends)

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
                # The ID the key was claimed under, into the batch's history with the plan.
                planned.append(
                    PlannedRun(
                        seq=seq, order_id=order_id, args=args, workflow_id=record.workflow_id
                    )
                )
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
    ends = [_item_end(row.seq, result) for row, result in zip(rows, results, strict=True)]
    # Read as pending in this very write transaction: every one of them still is.
    return await _finish_items(conn, batch_id, ends, pending_span=(start, end))


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


class ItemEnd(NamedTuple):
    """One item's end as stored: ``ItemDone`` without a pydantic object per item."""

    seq: int
    status: str
    outcome: str | None
    exit_code: int | None
    detail: str | None


def _item_end(seq: int, result: Applied | IdempotencyKeyReused) -> ItemEnd:
    """What one order's result means for its batch item."""
    if isinstance(result, IdempotencyKeyReused):
        return ItemEnd(seq, "failed", result.code, None, result.detail)
    outcome = result.outcome
    failure = outcome.failure
    if not result.applied:
        status = "replayed"
    elif failure is None:
        status = "succeeded"
    else:
        status = "failed"
    return ItemEnd(seq, status, outcome.status, None, None if failure is None else failure.detail)


async def _finish_items(
    conn: AsyncConnection,
    batch_id: str,
    ends: Sequence[ItemEnd],
    *,
    pending_span: tuple[int, int] | None = None,
) -> Counts:
    """Mark items decided and move the batch's counters, in the caller's transaction.

    Only items still pending change, so recording the same items twice counts them once.
    ``pending_span``: ``ends`` are all the items of ``start..end`` that the caller read
    as pending in this very transaction.
    """
    if not ends:
        return Counts()
    fresh = list(ends) if pending_span is not None else await _still_pending(conn, batch_id, ends)
    if not fresh:
        return Counts()
    # Items that ended alike (a whole chunk charged, say) change in one statement.
    alike: defaultdict[tuple[str, str | None, int | None, str | None], list[int]]
    alike = defaultdict(list)
    for end in fresh:
        alike[end.status, end.outcome, end.exit_code, end.detail].append(end.seq)
    most = max(alike, key=lambda key: len(alike[key]))
    single: list[dict[str, object]] = []
    for (status, outcome, exit_code, detail), seqs in alike.items():
        if pending_span is not None and (status, outcome, exit_code, detail) == most:
            continue  # last, below
        if len(seqs) == 1:
            single.append(
                {
                    "b_seq": seqs[0],
                    "b_status": status,
                    "b_outcome": outcome,
                    "b_exit_code": exit_code,
                    "b_detail": detail,
                }
            )
            continue
        for part in range(0, len(seqs), IN_LIST_SIZE):
            await conn.execute(
                update(batch_items)
                .where(
                    batch_items.c.batch_id == batch_id,
                    batch_items.c.seq.in_(seqs[part : part + IN_LIST_SIZE]),
                )
                .values(status=status, outcome=outcome, exit_code=exit_code, detail=detail)
            )
    if single:
        await conn.execute(
            update(batch_items)
            .where(batch_items.c.batch_id == batch_id, batch_items.c.seq == bindparam("b_seq"))
            .values(
                status=bindparam("b_status"),
                outcome=bindparam("b_outcome"),
                exit_code=bindparam("b_exit_code"),
                detail=bindparam("b_detail"),
            ),
            single,
        )
    if pending_span is not None:
        # What is still pending in the span now is exactly the largest group: one range
        # update, instead of a key lookup per item.
        status, outcome, exit_code, detail = most
        await conn.execute(
            update(batch_items)
            .where(
                batch_items.c.batch_id == batch_id,
                batch_items.c.seq >= pending_span[0],
                batch_items.c.seq < pending_span[1],
                batch_items.c.status == "pending",
            )
            .values(status=status, outcome=outcome, exit_code=exit_code, detail=detail)
        )
    tally = Counter(end.status for end in fresh)
    counts = Counts(
        succeeded=tally["succeeded"], replayed=tally["replayed"], failed=tally["failed"]
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
    # The last items decided complete the batch at once: readers see it done without
    # waiting for the workflow's closing step (which then finds nothing to change).
    await conn.execute(
        update(batches)
        .where(
            batches.c.batch_id == batch_id,
            batches.c.status == "running",
            batches.c.succeeded + batches.c.replayed + batches.c.failed >= batches.c.total,
        )
        .values(status="completed", completed_at=func.now())
    )
    return counts


async def _still_pending(
    conn: AsyncConnection, batch_id: str, ends: Sequence[ItemEnd]
) -> list[ItemEnd]:
    pending: set[int] = set()
    seqs = [end.seq for end in ends]
    for part in range(0, len(seqs), IN_LIST_SIZE):
        rows = await conn.execute(
            select(batch_items.c.seq).where(
                batch_items.c.batch_id == batch_id,
                batch_items.c.seq.in_(seqs[part : part + IN_LIST_SIZE]),
                batch_items.c.status == "pending",
            )
        )
        pending.update(rows.scalars())
    return [end for end in ends if end.seq in pending]
