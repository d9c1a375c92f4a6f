"""(a), (b) and (c): one workflow per item, started by Temporal's client, the API or a parent.

(a) and (b) run in alternating rounds, so that both meet the dev server in the same states;
(c) is the seed's design, one child ``SeedFeeWorkflow`` per order under one parent, set
against (b): the issue's goal is (b) >= 1.5 x (c).
"""

from __future__ import annotations

import functools
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

from bench.report import Report, Row, at_least, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from bench.workflows import FanoutInput, FeeFanoutWorkflow, NoopInput, NoopWorkflow
from bench.workload import bounded, order

# (a) and (b) alternate in this many rounds each: the dev server slows down as its database
# fills, so whichever ran second paid more (one run: (a) first, (b)/(a) = 0.71; (b) first,
# (b)/(a) = 1.02). Alternating, both meet the server in the same states.
AB_ROUNDS = 4
C_LABEL = "(c) seed design: child one-activity fee workflow per order"


@dataclass
class SingleCalls:
    """One item of (a) (a no-op workflow) or of (b) (a fee call for a fresh order)."""

    stack: Stack
    http: httpx.AsyncClient

    async def raw(self, tag: str, i: int) -> int:
        return await self.stack.the_client().execute_workflow(
            NoopWorkflow.run,
            NoopInput(item=i),
            id=f"{self.stack.run_id}-noop-{tag}-{i}",
            task_queue=self.stack.bench_queue,
        )

    async def api(self, tag: str, i: int) -> int:
        fee = order(self.stack, tag, i)
        response = await self.http.post(
            f"/orders/{fee.order_id}/fee",
            json={"account_id": fee.account_id, "amount": fee.amount},
        )
        return response.status_code


@dataclass
class AlternatedRounds:
    """The summed times of (a)'s and (b)'s rounds, and (b)'s status codes."""

    raw_seconds: float = 0.0
    api_seconds: float = 0.0
    codes: list[int] = field(default_factory=list)


async def measure_raw_and_api(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(a) and (b) in alternating rounds: a no-op workflow per item, one fee call per order."""
    limits = httpx.Limits(
        max_connections=sizes.concurrency, max_keepalive_connections=sizes.concurrency
    )
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as http:
        calls = SingleCalls(stack, http)
        await bounded(sizes.warmup, sizes.concurrency, functools.partial(calls.raw, "warm"))
        await bounded(sizes.warmup, sizes.concurrency, functools.partial(calls.api, "b-warm"))
        rounds = await alternate(stack, sizes, report, calls)
    raw_rate = report_raw(sizes, report, rounds)
    report_api(sizes, report, rounds, raw_rate)


async def alternate(
    stack: Stack, sizes: Sizes, report: Report, calls: SingleCalls
) -> AlternatedRounds:
    """A quarter of (a), a quarter of (b), and so on, each round timed."""
    rounds = AlternatedRounds()
    for round_ in range(AB_ROUNDS):
        raw_n = share_of(sizes.raw, round_)
        api_n = share_of(sizes.api, round_)
        async with stack.cpu(report, "a"):
            started = time.perf_counter()
            await bounded(raw_n, sizes.concurrency, functools.partial(calls.raw, f"r{round_}"))
            rounds.raw_seconds += time.perf_counter() - started
        async with stack.cpu(report, "b"):
            started = time.perf_counter()
            rounds.codes += await bounded(
                api_n, sizes.concurrency, functools.partial(calls.api, f"b{round_}")
            )
            rounds.api_seconds += time.perf_counter() - started
    return rounds


def share_of(total: int, round_: int) -> int:
    """Round ``round_``'s part of ``total`` items; the parts add up to ``total``."""
    return total * (round_ + 1) // AB_ROUNDS - total * round_ // AB_ROUNDS


def report_raw(sizes: Sizes, report: Report, rounds: AlternatedRounds) -> float:
    """(a)'s row and figures; its rate."""
    raw_rate = sizes.raw / rounds.raw_seconds
    report.figures["a"] = {
        "items": sizes.raw,
        "rounds": AB_ROUNDS,
        "seconds": rounds.raw_seconds,
        "items_per_s": raw_rate,
    }
    report.add(Row("a", "(a) raw Temporal: no-op one-activity workflow", raw_rate, "items/s"))
    return raw_rate


def report_api(sizes: Sizes, report: Report, rounds: AlternatedRounds, raw_rate: float) -> None:
    """(b)'s row and figures, and (b)/(a) against its goal."""
    statuses = Counter(rounds.codes)
    rate = sizes.api / rounds.api_seconds
    report.figures["b"] = {
        "orders": sizes.api,
        "rounds": AB_ROUNDS,
        "seconds": rounds.api_seconds,
        "orders_per_s": rate,
        "statuses": {str(code): n for code, n in statuses.items()},
    }
    share = ratio(rate, raw_rate)
    note = None if statuses == Counter({200: sizes.api}) else f"statuses {dict(statuses)}"
    report.add(
        Row(
            "b",
            "(b) idempotent fee API, unique orders",
            rate,
            "orders/s",
            "(b)/(a)",
            share,
            ">= 0.8",
            at_least(share, 0.8),
            note,
        )
    )


async def run_fanout(stack: Stack, sizes: Sizes, tag: str, n: int) -> int:
    orders = [order(stack, tag, i) for i in range(n)]
    result = await stack.the_client().execute_workflow(
        FeeFanoutWorkflow.run,
        FanoutInput(orders=orders, task_queue=stack.bench_queue, window=sizes.concurrency),
        id=f"{stack.run_id}-fanout-{tag}",
        task_queue=stack.bench_queue,
    )
    return result.charged


async def measure_children(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(c) one parent starting one child seed-shaped fee workflow per order, bounded window."""
    await run_fanout(stack, sizes, "c-warm", sizes.warmup)
    async with stack.cpu(report, "c"):
        started = time.perf_counter()
        charged = await run_fanout(stack, sizes, "c", sizes.children)
        elapsed = time.perf_counter() - started
    rate = sizes.children / elapsed
    report.figures["c"] = {
        "orders": sizes.children,
        "window": sizes.concurrency,
        "seconds": elapsed,
        "orders_per_s": rate,
        "charged": charged,
    }
    note = None if charged == sizes.children else f"only {charged} charged"
    share = ratio(report.value("b"), rate)
    report.add(
        Row(
            "c",
            C_LABEL,
            rate,
            "orders/s",
            "(b)/(c)",
            share,
            ">= 1.5",
            at_least(share, 1.5) if share is not None else None,
            note,
        )
    )
