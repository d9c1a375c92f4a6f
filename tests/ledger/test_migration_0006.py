"""Migration 0006 fills ``balance_after`` of the journal written before it, on both databases.

A ledger is migrated to 0005, given accounts and entries as that schema wrote them (no
``balance_after``), then opened as every process opens it (migrated to head).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, text

from superscript.db.engine import create_engine, write_transaction
from superscript.db.migrate import MIGRATIONS_DIR
from superscript.ledger.listing import entries_page
from tests.conftest import PG_ADMIN_URL, _pg_admin, open_ledger


def _upgrade_to(connection: Connection, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


@pytest.fixture(params=["sqlite", "postgresql"])
async def fresh_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database (the session's PostgreSQL one is at head already)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    name = f"superscript_mig_{uuid.uuid4().hex[:10]}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def test_older_entries_get_their_balance_after(fresh_url: str) -> None:
    engine = create_engine(fresh_url)
    try:
        async with write_transaction(engine) as conn:
            await conn.run_sync(_upgrade_to, "0005")
            # Two accounts, their journals interleaved; balances as the charges left them.
            await conn.execute(
                text(
                    "INSERT INTO accounts (account_id, balance, opening_balance) "
                    "VALUES ('a', 940, 1000), ('b', 5, 50)"
                )
            )
            for account_id, order_id, amount in [
                ("a", "o1", 10),
                ("b", "o2", 45),
                ("a", "o3", 20),
                ("a", "o3", 30),
            ]:
                await conn.execute(
                    text(
                        "INSERT INTO entries (account_id, order_id, amount, kind) "
                        "VALUES (:a, :o, :m, 'naive_fee')"
                    ),
                    {"a": account_id, "o": order_id, "m": amount},
                )
    finally:
        await engine.dispose()

    async with open_ledger(fresh_url) as ledger:
        a = await entries_page(ledger, "a", None, 10)
        b = await entries_page(ledger, "b", None, 10)

    assert [(e.order_id, e.amount, e.balance_after) for e in a.items] == [
        ("o1", -10, 990),
        ("o3", -20, 970),
        ("o3", -30, 940),
    ]
    assert [(e.order_id, e.amount, e.balance_after) for e in b.items] == [("o2", -45, 5)]
