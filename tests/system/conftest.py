"""Stacks of real processes on the session's Temporal dev server and a SQLite ledger."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

from tests.conftest import unique
from tests.processes import Stack


class NewStack(Protocol):
    def __call__(self, **extra_env: str) -> Stack: ...


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """The test's own SQLite ledger, in ``tmp_path`` (the stack's data dir and log dir)."""
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture
def new_stack(tmp_path: Path, temporal_address: str, sqlite_url: str) -> Iterator[NewStack]:
    """Configures a ``Stack`` (nothing started yet) on the session's dev server, the test's
    SQLite ledger and a task queue of its own; whatever of it still runs at the end, and
    everything that started, is killed."""
    stacks: list[Stack] = []

    def configure(**extra_env: str) -> Stack:
        stack = Stack.configure(
            tmp_path,
            temporal_address=temporal_address,
            database_url=sqlite_url,
            data_dir=tmp_path,
            task_queue=unique("tq-system"),
            **extra_env,
        )
        stacks.append(stack)
        return stack

    yield configure
    for stack in stacks:
        stack.kill_all()
