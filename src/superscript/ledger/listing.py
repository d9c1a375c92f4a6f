"""Reading the ledger in pages: accounts, an account's journal, the decided fee orders.

Every list follows ``db.paging``: one index range per page, whatever the table's size.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, field_validator
from sqlalchemy import Select, select

from superscript.db.paging import Cursor, Keyset, Page, split_page
from superscript.ledger import schema
from superscript.ledger.models import Account, FeeOutcome, FeeStatus
from superscript.ledger.store import Ledger

ACCOUNTS = Keyset((schema.accounts.c.account_id,))
ENTRIES = Keyset((schema.entries.c.entry_id,))
ORDERS = Keyset((schema.fee_outcomes.c.decided_at, schema.fee_outcomes.c.order_id), True)

EntryKind = Literal["fee", "naive_fee", "refund"]


def utc(value: datetime) -> datetime:
    """A stored time as aware UTC (SQLite gives it back without its zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Entry(BaseModel):
    """One journal entry; ``amount`` signed as the balance moved (a charge is negative)."""

    model_config = ConfigDict(frozen=True)

    entry_id: int
    account_id: str
    order_id: str
    kind: EntryKind
    amount: int
    balance_after: int | None
    at: datetime

    @field_validator("at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return utc(value)

    @classmethod
    def from_row(cls, row: Any) -> Entry:
        # The journal stores what a change took from the balance: its sign is flipped.
        return cls(
            entry_id=row.entry_id,
            account_id=row.account_id,
            order_id=row.order_id,
            kind=row.kind,
            amount=-row.amount,
            balance_after=row.balance_after,
            at=row.created_at,
        )


def accounts_query(after: str | None, limit: int) -> Select[Any]:
    table = schema.accounts
    return ACCOUNTS.page(select(table.c.account_id, table.c.balance), after, limit)


async def accounts_page(ledger: Ledger, after: str | None, limit: int) -> Page[Account]:
    """Accounts by ``account_id``."""
    rows = await _rows(ledger, accounts_query(after, limit))
    return split_page(rows, limit, lambda row: Account(**row._asdict()), "account_id")


def entries_query(account_id: str, after: int | None, limit: int) -> Select[Any]:
    table = schema.entries
    return ENTRIES.page(select(table).where(table.c.account_id == account_id), after, limit)


async def entries_page(
    ledger: Ledger, account_id: str, after: int | None, limit: int
) -> Page[Entry]:
    """The account's journal, oldest first."""
    rows = await _rows(ledger, entries_query(account_id, after, limit))
    return split_page(rows, limit, Entry.from_row, "entry_id")


async def entries_of_order(ledger: Ledger, order_id: str) -> list[Entry]:
    """Every journal entry an order made, oldest first (one, for a charged fee)."""
    table = schema.entries
    query = select(table).where(table.c.order_id == order_id).order_by(table.c.entry_id)
    return [Entry.from_row(row) for row in await _rows(ledger, query)]


def orders_query(
    after: Cursor | None,
    limit: int,
    *,
    account_id: str | None = None,
    status: FeeStatus | None = None,
    decided_by: str | None = None,
) -> Select[Any]:
    """Decided fee orders, newest first; each filter has its own index."""
    table = schema.fee_outcomes
    query = select(table)
    if account_id is not None:
        query = query.where(table.c.account_id == account_id)
    if status is not None:
        query = query.where(table.c.status == status)
    if decided_by is not None:
        query = query.where(table.c.workflow_id == decided_by)
    return ORDERS.page(query, after, limit)


async def orders_page(
    ledger: Ledger,
    after: Cursor | None,
    limit: int,
    *,
    account_id: str | None = None,
    status: FeeStatus | None = None,
    decided_by: str | None = None,
) -> Page[FeeOutcome]:
    """A page of ``orders_query``."""
    query = orders_query(after, limit, account_id=account_id, status=status, decided_by=decided_by)
    rows = await _rows(ledger, query)
    return split_page(rows, limit, lambda row: FeeOutcome.model_validate(row._asdict()), "order_id")


async def _rows(ledger: Ledger, query: Select[Any]) -> Sequence[Any]:
    async with ledger.engine.connect() as conn:
        rows: Sequence[Any] = (await conn.execute(query)).all()
    return rows
