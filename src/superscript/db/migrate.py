"""Migrating a database to the current schema, from any number of processes at once."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine

from superscript.db.engine import is_sqlite, write_transaction

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head; safe when several processes start at once."""
    async with write_transaction(engine) as conn:
        if not is_sqlite(engine):
            # Serialise concurrent starters (API and workers) on one lock.
            await conn.execute(text("SELECT pg_advisory_xact_lock(7233001)"))
        await conn.run_sync(_upgrade)
