"""Processes a test leaves behind: when one counts as gone, and waiting until it is."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import pytest


def gone(process: int | psutil.Process) -> bool:
    """Whether a process has ended: there is no such process, or it is a zombie.

    A zombie has exited: it runs nothing and holds nothing but its exit status until its
    parent reads it, and an orphan's parent is init, which reaps in its own time. So a
    zombie counts as gone; counting it alive would fail every "nothing left running" check
    on a process that did stop. Given a ``psutil.Process`` (it remembers the start time),
    a pid since reused by another process counts as gone too.
    """
    try:
        found = process if isinstance(process, psutil.Process) else psutil.Process(process)
        return not found.is_running() or found.status() in (
            psutil.STATUS_ZOMBIE,
            psutil.STATUS_DEAD,
        )
    except psutil.NoSuchProcess:
        return True


async def until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    """Poll a plain condition (a file written, a process gone); fail past ``seconds``."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


async def wait_gone(*pids: int, seconds: float = 10.0) -> None:
    """Until every one of ``pids`` is gone (see ``gone``)."""
    await until(lambda: all(gone(pid) for pid in pids), f"processes {pids} gone", seconds)


def kill_leftovers(pids: Iterable[int]) -> None:
    """SIGKILL each of ``pids`` not gone yet (what a failing test left running)."""
    for pid in pids:
        if not gone(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


async def read_pid(path: Path, seconds: float = 10.0) -> int:
    """The pid a script writes to ``path``, once it has written it."""
    await until(path.exists, f"{path} written", seconds)
    return int(path.read_text())
