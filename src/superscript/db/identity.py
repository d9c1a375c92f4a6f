"""The identity of a database: the UUID a data dir records to refuse another ledger."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import (
    CheckConstraint,
    Column,
    DateTime,
    Integer,
    String,
    Table,
    func,
    inspect,
    select,
)
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from superscript.db.engine import create_engine
from superscript.db.metadata import metadata

# One row (singleton = 1): the random UUID that names this ledger, created by migration
# 0005. A data dir records it on first use and refuses a ledger with another one.
ledger_identity = Table(
    "ledger_identity",
    metadata,
    Column("singleton", Integer, primary_key=True, autoincrement=False),
    Column("ledger_id", String(36), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    CheckConstraint("singleton = 1", name="ck_ledger_identity_one_row"),
)


async def identity_of(engine: AsyncEngine) -> str:
    """The identity of a migrated database (migration 0005 creates it with the schema)."""
    async with engine.connect() as conn:
        found = await conn.scalar(select(ledger_identity.c.ledger_id))
    if found is None:
        raise RuntimeError("the ledger has no identity row; was its migration undone?")
    return str(found)


def _no_sqlite_file(url: str) -> bool:
    """A SQLite URL whose file does not exist (opening it would create it)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database
    return not database or database == ":memory:" or not Path(database).is_file()


async def read_ledger_id(url: str) -> str | None:
    """The identity of the ledger at ``url``, read without creating or migrating anything.

    None for a database that holds no identity yet: a SQLite file that does not exist, a
    database never migrated, or one migrated before 0005.
    """
    if _no_sqlite_file(url):
        return None
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            if not await conn.run_sync(lambda sync: inspect(sync).has_table("ledger_identity")):
                return None
            found: str | None = await conn.scalar(select(ledger_identity.c.ledger_id))
            return found
    finally:
        await engine.dispose()
