"""Apps shared by a whole test module: hundreds of refused requests need no app each."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from superscript.ledger import Ledger
from superscript.settings import Settings
from tests.conftest import Api, open_ledger, serve_app, unique


def quiet_settings(settings: Settings) -> Settings:
    """No naive sleep, and a short wait so a request that wrongly passes fails fast."""
    return settings.model_copy(update={"naive_delay": (0.0, 0.0), "result_wait_seconds": 2.0})


@asynccontextmanager
async def shared_app(url: str, client: Client, **update: Any) -> AsyncIterator[Api]:
    """One ledger and app for a whole module and database, without a worker.

    The tables here are hundreds of requests that must not reach Temporal at all; opening
    a ledger and an app for each would be most of their time. Every test uses fresh IDs,
    and the tests of a module run one after another, so row counts taken before and after
    a request are the request's own doing.
    """
    settings = Settings(database_url=url, task_queue=unique("idle"))
    async with (
        open_ledger(url) as ledger,
        serve_app(quiet_settings(settings).model_copy(update=update), ledger, client) as app,
    ):
        yield app


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database for a whole module, on each of the two (a sync fixture: the async
    ``pg_url`` can't be set up later)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('shared') / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture(scope="module")
async def quiet_api(module_db_url: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    """The app without a worker: no refused request may reach Temporal anyway."""
    async with shared_app(module_db_url, temporal_env.client) as served:
        yield served


@pytest.fixture
async def working_api(
    settings: Settings, ledger: Ledger, client: Client, worker: Worker
) -> AsyncIterator[Api]:
    """Per test, with a worker on its own queue, for the requests that must succeed."""
    async with serve_app(quiet_settings(settings), ledger, client) as served:
        yield served
