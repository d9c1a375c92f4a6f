"""(d) and (g): fee batches through the API, from ``POST /batches`` to completed.

(d) is set against (c), the seed's design; (g), a million orders, is ``big_batch``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import httpx

from bench.report import Report, Row, at_least, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from superscript.batches.client import FEE_CHUNK_SIZE, WINDOW


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


def fee_batch_csv(stack: Stack, tag: str, n: int) -> bytes:
    """The same batch as CSV (``text/csv``, the batch named in the query)."""
    accounts = stack.accounts
    count = len(accounts)
    prefix = f"{stack.run_id}-{tag}-"
    rows = "".join(f"{prefix}{i},{accounts[i % count]},1\n" for i in range(n))
    return f"order_id,account_id,amount\n{rows}".encode()


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
    stack: Stack,
    http: httpx.AsyncClient,
    tag: str,
    n: int,
    poll: float,
    deadline_s: float,
    *,
    csv: bool = False,
) -> BatchRun:
    """POST a fee batch of ``n`` fresh orders (JSON, or CSV); the time until GET says it
    completed."""
    batch_id = f"{stack.run_id}-batch-{tag}"
    if csv:
        body = fee_batch_csv(stack, tag, n)
        params = {"batch_id": batch_id, "kind": "fee"}
        content_type = "text/csv"
    else:
        body = fee_batch_body(stack, batch_id, tag, n)
        params, content_type = {}, "application/json"
    started = time.perf_counter()
    response = await http.post(
        "/batches", content=body, params=params, headers={"content-type": content_type}
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
