"""The ledger's operations: every balance change and its outcome record in one transaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from superscript.db.engine import create_engine, is_sqlite, write_transaction
from superscript.db.identity import identity_of
from superscript.db.migrate import migrate
from superscript.ledger import schema
from superscript.ledger.apply import FeeTransaction
from superscript.ledger.errors import (
    AccountExists,
    AccountNotFound,
    IdempotencyKeyReused,
    InsufficientFunds,
)
from superscript.ledger.models import Account, Applied, Decider, FeeOrder, FeeOutcome

__all__ = ["Account", "Applied", "Decider", "FeeOrder", "FeeOutcome", "FeeTransaction", "Ledger"]

# Transactions of fee orders are tried this often when concurrent writers keep deciding
# one of their orders first.
CONFLICT_ATTEMPTS = 3

T = TypeVar("T")


class Ledger:
    """Accounts and fee outcomes over one SQLAlchemy engine (SQLite or PostgreSQL)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    async def open(cls, url: str) -> Ledger:
        """Connect and migrate: every process that opens the ledger may be the first."""
        engine = create_engine(url)
        await migrate(engine)
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()

    def write(self) -> AbstractAsyncContextManager[AsyncConnection]:
        """A write transaction; on SQLite it takes the write lock up front."""
        return write_transaction(self.engine)

    async def ledger_id(self) -> str:
        """This ledger's identity, the one its data dir records."""
        return await identity_of(self.engine)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(select(1))

    # Accounts -------------------------------------------------------------------------

    async def create_account(self, account_id: str, balance: int) -> Account:
        try:
            async with self.write() as conn:
                await conn.execute(
                    schema.accounts.insert().values(
                        account_id=account_id, balance=balance, opening_balance=balance
                    )
                )
        except IntegrityError as exc:
            raise AccountExists(f"account {account_id!r} already exists") from exc
        return Account(account_id=account_id, balance=balance)

    async def get_account(self, account_id: str) -> Account:
        async with self.engine.connect() as conn:
            balance = await conn.scalar(
                select(schema.accounts.c.balance).where(schema.accounts.c.account_id == account_id)
            )
        if balance is None:
            raise AccountNotFound(f"account {account_id!r} does not exist")
        return Account(account_id=account_id, balance=balance)

    # Fees -----------------------------------------------------------------------------

    async def get_fee_outcome(self, order_id: str) -> FeeOutcome | None:
        async with self.engine.connect() as conn:
            return await _read_outcome(conn, order_id)

    async def apply_fee(self, order: FeeOrder, decider: Decider) -> Applied:
        """Apply ``order`` once: a second application returns the first outcome unchanged.

        Raises ``IdempotencyKeyReused`` when the order was decided with another account or
        amount. Unknown accounts and insufficient funds are recorded outcomes, not errors.
        """
        results = await self.apply_fees([order], decider)
        return results[0]

    async def apply_fees(self, orders: Sequence[FeeOrder], decider: Decider) -> list[Applied]:
        """Apply many orders in one transaction; each is decided at most once.

        Raises ``IdempotencyKeyReused`` (and applies none of them) when one of them was
        decided with another account or amount.
        """

        async def all_or_none(fees: FeeTransaction) -> list[Applied]:
            results = await fees.apply(orders)
            conflicts = [r for r in results if isinstance(r, IdempotencyKeyReused)]
            if conflicts:
                raise conflicts[0]
            return [r for r in results if isinstance(r, Applied)]

        return await self.in_fee_transaction(decider, all_or_none, what="fee outcomes")

    async def in_fee_transaction(
        self,
        decider: Decider,
        work: Callable[[FeeTransaction], Awaitable[T]],
        *,
        what: str,
    ) -> T:
        """Run ``work`` in one write transaction, the only way orders are applied.

        ``work`` applies its orders through the ``FeeTransaction`` it is given and may
        write its own record of their outcomes on its ``conn``: all of it commits at once.
        When a concurrent writer decided one of the orders first, everything is rolled
        back and ``work`` runs again in a new transaction (it must read what it needs in
        there), up to ``CONFLICT_ATTEMPTS`` times; ``what`` names it if all of them fail.
        """
        for _attempt in range(CONFLICT_ATTEMPTS):
            try:
                async with self.write() as conn:
                    return await work(FeeTransaction(conn, decider))
            except IntegrityError:
                # A concurrent transaction recorded one of these orders first (PostgreSQL
                # only: SQLite writers are serialised). Everything here was rolled back;
                # the next attempt finds that outcome and replays it.
                continue
        raise RuntimeError(f"{what} kept conflicting; giving up after {CONFLICT_ATTEMPTS} attempts")

    async def naive_deduct(self, order: FeeOrder) -> Account:
        """The seed's DeductFee: deduct every time it is called. Kept to show the problem."""
        async with self.write() as conn:
            balance = await _deduct(conn, order.account_id, order.amount)
            if balance is None:
                await _raise_why_not(conn, order)
            await conn.execute(
                schema.entries.insert().values(
                    account_id=order.account_id,
                    order_id=order.order_id,
                    amount=order.amount,
                    kind="naive_fee",
                    balance_after=balance,
                )
            )
        assert balance is not None
        return Account(account_id=order.account_id, balance=balance)

    # Audit ----------------------------------------------------------------------------

    async def charges_for(self, order_id: str) -> int:
        """How many balance changes the journal holds for ``order_id``."""
        async with self.engine.connect() as conn:
            count = await conn.scalar(
                select(func.count())
                .select_from(schema.entries)
                .where(schema.entries.c.order_id == order_id)
            )
        return int(count or 0)

    async def invariant(self, account_ids: Sequence[str]) -> tuple[int, int]:
        """(opening total, balances + journal) for the accounts: equal when nothing leaked."""
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(
                        func.coalesce(func.sum(schema.accounts.c.opening_balance), 0),
                        func.coalesce(func.sum(schema.accounts.c.balance), 0),
                    ).where(schema.accounts.c.account_id.in_(account_ids))
                )
            ).one()
            spent = await conn.scalar(
                select(func.coalesce(func.sum(schema.entries.c.amount), 0)).where(
                    schema.entries.c.account_id.in_(account_ids)
                )
            )
        return int(row[0]), int(row[1]) + int(spent or 0)

    @property
    def is_sqlite(self) -> bool:
        return is_sqlite(self.engine)


async def _read_outcome(conn: AsyncConnection, order_id: str) -> FeeOutcome | None:
    row = (
        await conn.execute(
            select(schema.fee_outcomes).where(schema.fee_outcomes.c.order_id == order_id)
        )
    ).first()
    if row is None:
        return None
    return FeeOutcome.model_validate(row._asdict())


async def _deduct(conn: AsyncConnection, account_id: str, amount: int) -> int | None:
    """Take ``amount`` if the balance covers it; the new balance, or None if it did not."""
    accounts = schema.accounts
    result = await conn.execute(
        update(accounts)
        .where(accounts.c.account_id == account_id, accounts.c.balance >= amount)
        .values(balance=accounts.c.balance - amount)
        .returning(accounts.c.balance)
    )
    balance: int | None = result.scalar_one_or_none()
    return balance


async def _balance(conn: AsyncConnection, account_id: str) -> int | None:
    balance: int | None = await conn.scalar(
        select(schema.accounts.c.balance).where(schema.accounts.c.account_id == account_id)
    )
    return balance


async def _raise_why_not(conn: AsyncConnection, order: FeeOrder) -> None:
    balance = await _balance(conn, order.account_id)
    if balance is None:
        raise AccountNotFound(f"account {order.account_id!r} does not exist")
    raise InsufficientFunds(
        f"account {order.account_id!r} has {balance} and the fee is {order.amount}"
    )
