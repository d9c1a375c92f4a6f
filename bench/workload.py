"""What the measurements send: fresh orders, and calls with a bound on how many are in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bench.stack import Stack
from superscript.ledger import FeeOrder

T = TypeVar("T")


async def bounded(n: int, concurrency: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """``call(0..n-1)`` with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with gate:
            return await call(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


def order(stack: Stack, tag: str, i: int) -> FeeOrder:
    return FeeOrder(
        order_id=f"{stack.run_id}-{tag}-{i}",
        account_id=stack.accounts[i % len(stack.accounts)],
        amount=1,
    )
