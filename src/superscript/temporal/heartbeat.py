"""Awaiting work while an activity tells Temporal it is alive: one behaviour for all.

Without heartbeats Temporal learns of a lost worker only when the attempt's
start-to-close timeout (minutes, or hours for a script) runs out; and a busy database
(SQLite's single writer under a large batch) must not pass for a lost worker either.

The behaviour, wherever it is used:

- a beat every ``every`` seconds while the work runs, none after it is done;
- the details given ride along on every beat (Temporal hands the last ones to the next
  attempt, and reports them with a heartbeat timeout);
- whenever the wait ends before the work does (the activity is cancelled, or a beat
  raises), the work is cancelled and awaited, each further cancellation passed on to it,
  before the error goes on: nothing the work holds (a transaction, a script's process
  group) outlives the wait. The work's own error from that cancellation is not reported.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from temporalio import activity

EVERY_SECONDS: Final = 2.0
"""Well inside every heartbeat timeout the workflows set (10 s or more): a late beat is fine."""

T = TypeVar("T")


async def beating(work: Awaitable[T], every: float, beat: Callable[[], object]) -> T:
    """``work``'s result, calling ``beat`` every ``every`` seconds until it is done.

    The heart of ``heartbeating``, for callers that are not activities themselves (the
    script runner takes its beat from its caller).
    """
    if not every > 0:
        raise ValueError(f"every must be positive, got {every!r}")
    task = asyncio.ensure_future(work)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            beat()
    finally:
        await _end(task)


async def heartbeating(work: Awaitable[T], *details: Any, every: float = EVERY_SECONDS) -> T:
    """``work``'s result, heartbeating this activity with ``details`` until it is done."""
    return await beating(work, every, lambda: activity.heartbeat(*details))


async def _end(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` unless done and wait until it is, passing on every cancellation."""
    cancelled: asyncio.CancelledError | None = None
    while not task.done():
        task.cancel()
        try:
            await asyncio.wait({task})
        except asyncio.CancelledError as exc:
            cancelled = exc
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not log it: the caller's error wins
    if cancelled is not None:
        raise cancelled
