"""(d) and (g): fee batches through the API, from ``POST /batches`` to completed.

(d) is set against (c), the seed's design; (g), a million orders, also samples the peak
memory of the worker and of the API while it runs.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.probes import RSS_INTERVAL, PeakRss
from bench.report import GIB, MIB, Report, Row, at_least, ratio
from bench.sizes import BIG_GOAL_ORDERS, BIG_GOAL_S, Sizes
from bench.stack import Stack
from superscript.batches.client import FEE_CHUNK_SIZE, WINDOW
from superscript.db.engine import is_sqlite


def fee_batch_body(stack: Stack, batch_id: str, tag: str, n: int) -> bytes:
    """The JSON of a fee batch, built as bytes directly (a million items in about a second)."""
    accounts = stack.accounts
    count = len(accounts)
    prefix = f"{stack.run_id}-{tag}-"
    items = ",".join(
        f'{{"order_id":"{prefix}{i}","account_id":"{accounts[i % count]}","amount":1}}'
        for i in range(n)
    )
    return f'{{"batch_id":"{batch_id}","kind":"fee","items":[{items}]}}'.encode()


@dataclass
class BatchRun:
    post_seconds: float
    total_seconds: float
    final: dict[str, Any]
    polls: int

    def figures(self, orders: int) -> dict[str, Any]:
        """The figures (d) and (g) both report for a batch of ``orders``."""
        return {
            "orders": orders,
            "seconds": self.total_seconds,
            "post_seconds": self.post_seconds,
            "orders_per_s": orders / self.total_seconds,
            "processing_orders_per_s": orders / (self.total_seconds - self.post_seconds),
            "final": self.final,
        }


async def run_batch(
    stack: Stack, http: httpx.AsyncClient, tag: str, n: int, poll: float, deadline_s: float
) -> BatchRun:
    """POST a fee batch of ``n`` fresh orders; the time until GET says it completed."""
    batch_id = f"{stack.run_id}-batch-{tag}"
    body = fee_batch_body(stack, batch_id, tag, n)
    started = time.perf_counter()
    response = await http.post(
        "/batches", content=body, headers={"content-type": "application/json"}
    )
    posted = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text[:500]}")
    del body
    polls = 0
    while True:
        stack.check_alive()
        status = await http.get(f"/batches/{batch_id}")
        polls += 1
        final: dict[str, Any] = status.json()
        if status.status_code == 200 and final["status"] == "completed":
            return BatchRun(posted - started, time.perf_counter() - started, final, polls)
        if time.perf_counter() - started > deadline_s:
            raise TimeoutError(f"batch {batch_id} not completed in {deadline_s:.0f}s: {final}")
        await asyncio.sleep(poll)


async def measure_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(d) POST /batches kind fee with fresh orders, until GET /batches/{id} says completed."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=600) as http:
        await run_batch(stack, http, "d-warm", sizes.warmup, 0.05, 60)
        async with stack.cpu(report, "d"):
            run = await run_batch(stack, http, "d", sizes.batch, 0.05, sizes.batch_deadline_s)
    rate = sizes.batch / run.total_seconds
    report.figures["d"] = {
        **run.figures(sizes.batch),
        "chunk_size": FEE_CHUNK_SIZE,
        "window": WINDOW,
    }
    share = ratio(rate, report.value("c"))
    note = f"POST {run.post_seconds:.2f}s"
    if run.final.get("succeeded") != sizes.batch:
        note += f"; succeeded {run.final.get('succeeded')} of {sizes.batch}"
    report.add(
        Row(
            "d",
            f"(d) fee batch, {sizes.batch:,} orders",
            rate,
            "orders/s",
            "(d)/(c)",
            share,
            ">= 30",
            at_least(share, 30),
            note,
        )
    )


async def measure_big_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(g) one fee batch of a million orders; the worker's and the API's peak RSS."""
    worker_rss = PeakRss(stack.worker_pid())
    api_rss = PeakRss(stack.api_pid())
    baseline = worker_rss.sample()
    worker_rss.start()
    api_rss.start()
    completed = False
    try:
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=900) as http,
            stack.cpu(report, "g"),
        ):
            run = await run_batch(stack, http, "g", sizes.big_batch, 0.5, sizes.big_deadline_s)
        completed = run.final.get("succeeded") == sizes.big_batch
    finally:
        worker_peak = worker_rss.finish()
        api_peak = api_rss.finish()
        report.figures["g_rss"] = {
            "worker_baseline_mib": baseline / MIB,
            "worker_peak_mib": worker_peak / MIB,
            "api_peak_mib": api_peak / MIB,
            "samples": worker_rss.samples,
            "interval_s": RSS_INTERVAL,
        }
    rate = sizes.big_batch / run.total_seconds
    report.figures["g"] = run.figures(sizes.big_batch)
    note = f"POST {run.post_seconds:.1f}s, {rate:,.0f} orders/s"
    if not completed:
        note += f"; succeeded {run.final.get('succeeded')} of {sizes.big_batch}"
    report.add(
        Row(
            "g",
            f"(g) fee batch, {sizes.big_batch:,} orders, wall time",
            run.total_seconds,
            "s",
            goal="completes",
            reached=completed,
            note=note,
        )
    )
    report.add(big_goal_row(stack, sizes, report, run.total_seconds, completed))
    report.add(
        Row(
            "g_rss",
            "(g) worker peak RSS (with children)",
            worker_peak / MIB,
            "MiB",
            goal="< 1024 MiB",
            reached=completed and worker_peak < GIB,
            note=f"baseline {baseline / MIB:.0f} MiB",
        )
    )
    report.add(Row("g_api_rss", "(g) API peak RSS (info)", api_peak / MIB, "MiB"))


def big_goal_row(
    stack: Stack, sizes: Sizes, report: Report, seconds: float, completed: bool
) -> Row:
    """(g) against the issue's 40 s for 1,000,000 orders (scaled to ``--quick``'s size),
    with what the raw baseline of the ledger's database, (h) or (i), would take."""
    goal = sizes.big_goal_s
    goal_text = f"<= {goal:.0f} s"
    if sizes.big_batch != BIG_GOAL_ORDERS:
        goal_text += f" ({BIG_GOAL_S:.0f} s per {BIG_GOAL_ORDERS:,}, scaled)"
    key, driver = ("h", "sqlite3") if is_sqlite(stack.the_ledger().engine) else ("i", "asyncpg")
    raw = report.figures.get(key)
    note = None
    if raw:
        note = f"raw {driver} ({key}) would take {sizes.big_batch / raw['orders_per_s']:.1f} s"
    return Row(
        "g_goal",
        f"(g) fee batch, {sizes.big_batch:,} orders, end to end, POST included",
        seconds,
        "s",
        goal=goal_text,
        reached=completed and seconds <= goal,
        note=note,
    )
