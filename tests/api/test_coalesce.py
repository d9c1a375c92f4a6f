"""The API's sharing of one wait among concurrent calls for one key."""

from __future__ import annotations

import asyncio
import functools

import pytest

from superscript.api.coalesce import Coalescer


async def test_concurrent_callers_share_one_run_and_its_result() -> None:
    coalescer: Coalescer[int] = Coalescer()
    runs = 0
    release = asyncio.Event()

    async def work() -> int:
        nonlocal runs
        runs += 1
        await release.wait()
        return 42

    barrier = asyncio.Barrier(20)
    arrived = 0

    async def call() -> int:
        nonlocal arrived
        await barrier.wait()
        arrived += 1
        if arrived == 20:
            # Nothing yields between here and joining: every caller is in before it ends.
            release.set()
        return await coalescer.run("order-1", work)

    assert await asyncio.gather(*(call() for _ in range(20))) == [42] * 20
    assert runs == 1
    assert coalescer.running == 0

    # Once it has ended, the next call runs the work again (the ledger answers repeats).
    assert await coalescer.run("order-1", work) == 42
    assert runs == 2


async def test_other_keys_run_on_their_own() -> None:
    coalescer: Coalescer[str] = Coalescer()
    started: list[str] = []

    async def work(key: str) -> str:
        started.append(key)
        await asyncio.sleep(0)
        return key

    results = await asyncio.gather(*(coalescer.run(k, functools.partial(work, k)) for k in "abc"))
    assert results == ["a", "b", "c"] and sorted(started) == ["a", "b", "c"]


async def test_a_caller_going_away_does_not_cancel_the_others() -> None:
    coalescer: Coalescer[str] = Coalescer()
    release = asyncio.Event()

    async def work() -> str:
        await release.wait()
        return "decided"

    leaving = asyncio.create_task(coalescer.run("k", work))
    staying = asyncio.create_task(coalescer.run("k", work))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    release.set()
    assert await staying == "decided"


async def test_every_caller_gets_the_same_failure() -> None:
    coalescer: Coalescer[int] = Coalescer()
    release = asyncio.Event()

    async def work() -> int:
        await release.wait()
        raise LookupError("no outcome")

    callers = [asyncio.create_task(coalescer.run("k", work)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    outcomes = await asyncio.gather(*callers, return_exceptions=True)
    assert all(isinstance(o, LookupError) and str(o) == "no outcome" for o in outcomes)
    assert coalescer.running == 0


async def test_close_cancels_what_still_runs() -> None:
    coalescer: Coalescer[int] = Coalescer()
    never = asyncio.Event()

    async def work() -> int:
        await never.wait()
        return 1

    caller = asyncio.create_task(coalescer.run("k", work))
    await asyncio.sleep(0)
    await coalescer.close()
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert coalescer.running == 0
