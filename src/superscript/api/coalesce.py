"""One in-flight wait per key in this API process: concurrent duplicate calls share it.

Without it, each of ten concurrent calls for one order starts the workflow (joining the
same run) and long-polls its history: ten round trips to Temporal for one answer. The
ledger and Temporal still decide; this only spares the repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs ``work`` once per key at a time; every concurrent caller gets its result."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    async def run(self, key: str, work: Callable[[], Awaitable[T]]) -> T:
        """``work()``'s result, or that of the call already running for ``key``.

        The work runs as a task of its own: a caller that goes away (a client hanging
        up) does not cancel it for the others.
        """
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._forget(key, done))
        return await asyncio.shield(task)

    def _forget(self, key: str, done: asyncio.Task[T]) -> None:
        if self._running.get(key) is done:
            del self._running[key]
        if not done.cancelled():
            done.exception()  # retrieved: every caller may have gone away

    @property
    def running(self) -> int:
        return len(self._running)

    async def close(self) -> None:
        """Cancel what still runs (the app is stopping) and wait for it to end."""
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
