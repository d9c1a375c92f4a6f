"""Engines for SQLite and PostgreSQL, and the one way to open a write transaction on them."""

from __future__ import annotations

import asyncio
import sqlite3
import time
import weakref
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

# Seconds a SQLite writer waits for the lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 60_000
# Openers racing to switch a new SQLite file to WAL: tries, about 5 s in all.
WAL_SWITCH_ATTEMPTS = 30


def async_url(url: str) -> str:
    """Map the contract's ``sqlite:///`` and ``postgresql://`` URLs to the async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme {parsed.drivername!r}")
    return parsed.render_as_string(hide_password=False)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An engine whose SQLite writers take the lock up front (no upgrade deadlocks)."""
    full = async_url(url)
    if full.startswith("sqlite"):
        engine = create_async_engine(full, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", 20)
    kwargs.setdefault("max_overflow", 20)
    kwargs.setdefault("pool_pre_ping", True)
    return create_async_engine(full, **kwargs)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves, so that writers can say BEGIN IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching to WAL takes a lock another opener may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode")
        if cursor.fetchone()[0] != "wal":
            _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        if connection.get_execution_options().get("write"):
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            connection.exec_driver_sql("BEGIN")


# One asyncio lock per SQLite engine and event loop: the process's writers take turns.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[
    AsyncEngine, weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock]
] = weakref.WeakKeyDictionary()


@asynccontextmanager
async def _writers_turn(engine: AsyncEngine) -> AsyncIterator[None]:
    """On SQLite, this process's turn to write; elsewhere no wait at all."""
    if not is_sqlite(engine):
        yield
        return
    locks = _SQLITE_WRITERS.get(engine)
    if locks is None:
        locks = _SQLITE_WRITERS[engine] = weakref.WeakKeyDictionary()
    loop = asyncio.get_running_loop()
    lock = locks.get(loop)
    if lock is None:
        lock = locks[loop] = asyncio.Lock()
    async with lock:
        yield


def _switch_to_wal(cursor: Any) -> None:
    """WAL is kept in the file, so only the openers of a new file get here. Racing ones
    (API and worker starting together) can be refused at once: SQLite does not wait for
    this lock even with a busy timeout. They try again, briefly (blocking: once per file).
    """
    for attempt in range(WAL_SWITCH_ATTEMPTS):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == WAL_SWITCH_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))


@asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A write transaction; on SQLite it takes the write lock up front (BEGIN IMMEDIATE),
    so concurrent writers queue instead of deadlocking on a lock upgrade.

    On SQLite the writers of one process also queue on an asyncio lock first: a writer
    that finds the file locked sleeps in SQLite's busy handler (up to 100 ms a time) and
    leaves the database idle after the lock is freed; queued in the event loop, the next
    writer starts the moment the last one commits. Other processes still meet the busy
    handler, as before.
    """
    async with _writers_turn(engine), engine.connect() as conn:
        conn = await conn.execution_options(write=True)
        async with conn.begin():
            yield conn


def is_sqlite(engine: AsyncEngine) -> bool:
    return engine.dialect.name == "sqlite"
