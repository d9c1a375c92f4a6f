"""(f): a duplicate storm, 1,000 concurrent calls over 100 order IDs, against 100 unique ones.

The goal is one charge and one answer per order ID; the latencies say what joining an
order's workflow costs against starting one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import httpx

from bench.report import Report, Row, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from bench.workload import order
from superscript.ledger import FeeOrder


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least ``pct`` percent at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Burst:
    latencies: list[float]
    statuses: Counter[int]
    bodies: dict[str, set[str]]


# Connections per httpx client in a burst: httpx's pool does work in proportion to its
# connections on every request, so one client of 1,000 connections costs the bench more
# CPU than the API it measures. Shards of 50 keep the client side cheap.
BURST_SHARD = 50


async def burst(stack: Stack, orders: Sequence[FeeOrder], report: Report, key: str) -> Burst:
    """All calls released together by a barrier; each one's latency from the release."""
    calls = len(orders)
    shards = max(1, math.ceil(calls / BURST_SHARD))
    limits = httpx.Limits(max_connections=BURST_SHARD + 10, max_keepalive_connections=0)
    barrier = asyncio.Barrier(calls)
    result = Burst([], Counter(), {})
    async with contextlib.AsyncExitStack() as exits:
        clients = [
            await exits.enter_async_context(
                httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits)
            )
            for _ in range(shards)
        ]

        async def call(i: int, fee: FeeOrder) -> None:
            http = clients[i % shards]
            await barrier.wait()
            started = time.perf_counter()
            response = await http.post(
                f"/orders/{fee.order_id}/fee",
                json={"account_id": fee.account_id, "amount": fee.amount},
            )
            result.latencies.append(time.perf_counter() - started)
            result.statuses[response.status_code] += 1
            result.bodies.setdefault(fee.order_id, set()).add(response.text)

        async with stack.cpu(report, key):
            await asyncio.gather(*(call(i, fee) for i, fee in enumerate(orders)))
    report.figures[f"{key}_clients"] = {"clients": shards, "connections_each": BURST_SHARD}
    return result


async def measure_storm(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(f) 1,000 concurrent calls over 100 order IDs, against 100 concurrent unique calls."""
    ledger = stack.the_ledger()
    unique_orders = [order(stack, "f-unique", i) for i in range(sizes.storm_orders)]
    storm_ids = [order(stack, "f-storm", i) for i in range(sizes.storm_orders)]
    storm_orders = [storm_ids[i % len(storm_ids)] for i in range(sizes.storm_calls)]
    unique = await burst(stack, unique_orders, report, "f_unique")
    storm = await burst(stack, storm_orders, report, "f_storm")
    charges = [await ledger.charges_for(fee.order_id) for fee in storm_ids]
    total = sum(charges)
    differing = sum(1 for bodies in storm.bodies.values() if len(bodies) != 1)
    u50, u99 = percentile(unique.latencies, 50) * 1000, percentile(unique.latencies, 99) * 1000
    s50, s99 = percentile(storm.latencies, 50) * 1000, percentile(storm.latencies, 99) * 1000
    report.figures["f"] = {
        "calls": sizes.storm_calls,
        "order_ids": sizes.storm_orders,
        "charges": total,
        "orders_not_charged_once": sum(1 for c in charges if c != 1),
        "orders_with_differing_bodies": differing,
        "storm_statuses": {str(k): v for k, v in storm.statuses.items()},
        "unique_statuses": {str(k): v for k, v in unique.statuses.items()},
        "storm_p50_ms": s50,
        "storm_p99_ms": s99,
        "unique_p50_ms": u50,
        "unique_p99_ms": u99,
    }
    exact = total == sizes.storm_orders and differing == 0
    note = None
    if storm.statuses != Counter({200: sizes.storm_calls}):
        note = f"statuses {dict(storm.statuses)}"
    if differing:
        note = (note + "; " if note else "") + f"{differing} orders got differing bodies"
    report.add(
        Row(
            "f",
            f"(f) storm: {sizes.storm_calls:,} calls over {sizes.storm_orders} IDs, charges",
            total,
            "charges",
            goal=f"== {sizes.storm_orders}, one body per ID",
            reached=exact,
            note=note,
        )
    )
    report.add(Row("f_p50", "(f) storm p50 latency", s50, "ms", "storm/unique", ratio(s50, u50)))
    report.add(Row("f_p99", "(f) storm p99 latency", s99, "ms", "storm/unique", ratio(s99, u99)))
    unique_note = None
    if unique.statuses != Counter({200: sizes.storm_orders}):
        unique_note = f"statuses {dict(unique.statuses)}"
    report.add(
        Row(
            "f_u50",
            f"(f) {sizes.storm_orders} unique calls p50 latency",
            u50,
            "ms",
            note=unique_note,
        )
    )
    report.add(Row("f_u99", f"(f) {sizes.storm_orders} unique calls p99 latency", u99, "ms"))
