"""Storing a submitted batch: its fingerprint, and its items in bulk, in one transaction."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.models import Batch, BatchItem, BatchKind, batch_workflow_id
from superscript.batches.reading import get_batch
from superscript.batches.schema import batch_items, batches
from superscript.contract import ID_RE
from superscript.ledger import FeeOrder, IdempotencyKeyReused, Ledger

INSERT_ROWS_PER_STATEMENT = 5_000
DIGEST_LINES_PER_UPDATE = 10_000
# Identifiers of the contract are the same in JSON as in an f-string (no quote, no escape).
_PLAIN_ID = ID_RE

ITEM_COLUMNS = ("batch_id", "seq", "order_id", "status", "account_id", "amount", "args")
_INSERT_ITEMS_SQL = (
    f"INSERT INTO batch_items ({', '.join(ITEM_COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in ITEM_COLUMNS)})"
)


Cells = tuple[str, str | None, int | None, str | None]
"""An item as its row holds it: ``order_id``, ``account_id``, ``amount``, ``args`` (JSON)."""


def fee_item_json(order_id: str, account_id: str, amount: int) -> str:
    """A fee item as compact JSON; for plain identifiers without ``json.dumps`` (which was
    about half of what storing the items cost), byte for byte the same text."""
    if type(amount) is int and _PLAIN_ID.fullmatch(order_id) and _PLAIN_ID.fullmatch(account_id):
        return plain_fee_item_json(order_id, account_id, amount)
    item = {"order_id": order_id, "account_id": account_id, "amount": amount}
    return json.dumps(item, separators=(",", ":"))


def plain_fee_item_json(order_id: str, account_id: str, amount: int) -> str:
    """:func:`fee_item_json` of identifiers already known to be plain (``ID_RE``)."""
    return f'{{"order_id":"{order_id}","account_id":"{account_id}","amount":{amount}}}'


def script_item_json(order_id: str, args: list[str]) -> str:
    return json.dumps({"order_id": order_id, "args": args}, separators=(",", ":"))


def _item_json(item: BatchItem) -> str:
    """The digest's line for ``item``: the same for the same item however it came."""
    if isinstance(item, FeeOrder):
        return fee_item_json(item.order_id, item.account_id, item.amount)
    return script_item_json(item.order_id, item.args)


def item_cells(item: BatchItem) -> Cells:
    if isinstance(item, FeeOrder):
        return (item.order_id, item.account_id, item.amount, None)
    return (item.order_id, None, None, json.dumps(item.args))


class ItemsDigest:
    """A fingerprint of what was submitted, fed as the items come: the same items in the same
    order give the same value however they arrive (one JSON list, or CSV rows in chunks)."""

    def __init__(self, kind: BatchKind, script: str | None) -> None:
        self._hash = hashlib.sha256(f"{kind}\n{script or ''}\n".encode())

    def add(self, items: Sequence[BatchItem]) -> None:
        for start in range(0, len(items), DIGEST_LINES_PER_UPDATE):
            part = items[start : start + DIGEST_LINES_PER_UPDATE]
            self.add_lines([_item_json(item) for item in part])

    def add_lines(self, lines: Sequence[str]) -> None:
        """Items already written as their lines (``fee_item_json``, ``script_item_json``)."""
        self._hash.update("".join(line + "\n" for line in lines).encode())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def items_digest(kind: BatchKind, script: str | None, items: Sequence[BatchItem]) -> str:
    """A fingerprint of what was submitted: the same batch ID must mean the same items."""
    digest = ItemsDigest(kind, script)
    digest.add(items)
    return digest.hexdigest()


@dataclass(frozen=True)
class StagedItems:
    """A batch's items known by their count and digest, read back as chunks of their cells
    to be stored (so that a batch staged outside memory is never whole in it)."""

    total: int
    digest: str
    chunks: Callable[[], Iterable[Sequence[Cells]]]


def staged_list(kind: BatchKind, script: str | None, items: Sequence[BatchItem]) -> StagedItems:
    """Items already in memory (a JSON body), staged as they are."""

    def chunks() -> Iterator[list[Cells]]:
        for start in range(0, len(items), INSERT_ROWS_PER_STATEMENT):
            yield [item_cells(item) for item in items[start : start + INSERT_ROWS_PER_STATEMENT]]

    return StagedItems(len(items), items_digest(kind, script, items), chunks)


async def create_batch(
    ledger: Ledger,
    batch_id: str,
    kind: BatchKind,
    script: str | None,
    items: Sequence[BatchItem],
) -> tuple[Batch, bool]:
    """Store a new batch, or return the existing one (False) if the items are the same.

    Raises ``IdempotencyKeyReused`` when ``batch_id`` was used for other items.
    """
    return await create_staged_batch(
        ledger, batch_id, kind, script, staged_list(kind, script, items)
    )


async def create_staged_batch(
    ledger: Ledger, batch_id: str, kind: BatchKind, script: str | None, staged: StagedItems
) -> tuple[Batch, bool]:
    """:func:`create_batch` of items staged elsewhere: stored in one transaction, or none."""
    digest = staged.digest
    existing = await get_batch(ledger, batch_id)
    if existing is None:
        try:
            async with ledger.write() as conn:
                await _insert_batch(conn, batch_id, kind, script, staged)
            created = await get_batch(ledger, batch_id)
            assert created is not None
            return created, True
        except IntegrityError:
            existing = await get_batch(ledger, batch_id)
            if existing is None:
                raise
    async with ledger.engine.connect() as conn:
        stored_digest = await conn.scalar(
            select(batches.c.items_digest).where(batches.c.batch_id == batch_id)
        )
    if stored_digest != digest:
        raise IdempotencyKeyReused(
            f"batch {batch_id!r} was already submitted with other items; nothing was changed"
        )
    return existing, False


async def _insert_batch(
    conn: AsyncConnection,
    batch_id: str,
    kind: BatchKind,
    script: str | None,
    staged: StagedItems,
) -> None:
    await conn.execute(
        batches.insert().values(
            batch_id=batch_id,
            kind=kind,
            script=script,
            total=staged.total,
            items_digest=staged.digest,
            workflow_id=batch_workflow_id(batch_id),
            status="running",
        )
    )
    seq = 0
    for cells in staged.chunks():
        for start in range(0, len(cells), INSERT_ROWS_PER_STATEMENT):
            chunk = cells[start : start + INSERT_ROWS_PER_STATEMENT]
            rows: list[tuple[object, ...]] = [
                (batch_id, seq + offset, order_id, "pending", account_id, amount, args)
                for offset, (order_id, account_id, amount, args) in enumerate(chunk)
            ]
            await _insert_items(conn, rows)
            seq += len(chunk)
    # Never a total that its items do not make up.
    assert seq == staged.total, (seq, staged.total)


async def _insert_items(conn: AsyncConnection, rows: list[tuple[object, ...]]) -> None:
    """Rows straight to the driver: COPY on PostgreSQL, one prepared statement on SQLite.

    SQLAlchemy's own executemany (``exec_driver_sql`` too) spends more time on each row's
    parameters than the database spends storing it. On PostgreSQL the caller's transaction
    has already run a statement, so COPY runs inside it (asyncpg begins SQLAlchemy's
    transaction lazily).
    """
    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    assert driver is not None
    if conn.dialect.name == "postgresql":
        await driver.copy_records_to_table(batch_items.name, records=rows, columns=ITEM_COLUMNS)
    else:
        # aiosqlite, inside the BEGIN IMMEDIATE the caller's transaction began with.
        await driver.executemany(_INSERT_ITEMS_SQL, rows)
