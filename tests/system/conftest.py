"""Stacks of real processes on the session's Temporal dev server and a SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import NewStack, unique


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The test's own SQLite ledger, in ``tmp_path`` (the stack's data dir and log dir)."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def new_sqlite_stack(tmp_path: Path, temporal_address: str, sqlite_url: str) -> Iterator[NewStack]:
    """Stacks on the session's dev server, the test's own SQLite ledger (whatever the
    ``db_url`` parameter, which these tests do not take) and a task queue of their own;
    killed at teardown."""
    stacks = NewStack(tmp_path, temporal_address, sqlite_url, unique("tq-system"))
    yield stacks
    stacks.kill_all()
