"""A load generator for tests/system/test_load.py, run as a process of its own.

    python tests/system/load_generator.py BASE_URL ORDERS.json CALLS_PER_ORDER RESULTS.json

ORDERS.json maps each order ID to its fee body (``{"account_id", "amount"}``). Every call
(CALLS_PER_ORDER for each order, shuffled) waits at one gate, then all are released at once,
each on a connection of its own. RESULTS.json gets one entry per call: the order, the
status code and body of the answer, or the error that took its place.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import httpx


async def run(base_url: str, orders: dict[str, dict[str, Any]], calls: int) -> list[dict[str, Any]]:
    plan = [order_id for order_id in orders for _ in range(calls)]
    random.Random(len(plan)).shuffle(plan)
    limits = httpx.Limits(max_connections=len(plan), max_keepalive_connections=len(plan))
    results: list[dict[str, Any]] = []
    go = asyncio.Event()
    async with httpx.AsyncClient(base_url=base_url, timeout=120, limits=limits) as http:

        async def call(order_id: str) -> None:
            await go.wait()
            started = time.monotonic()
            try:
                answer = await http.post(f"/orders/{order_id}/fee", json=orders[order_id])
            except httpx.HTTPError as exc:
                results.append({"order_id": order_id, "error": repr(exc)})
                return
            results.append(
                {
                    "order_id": order_id,
                    "status": answer.status_code,
                    "body": answer.text,
                    "seconds": time.monotonic() - started,
                }
            )

        tasks = [asyncio.create_task(call(order_id)) for order_id in plan]
        await asyncio.sleep(0)  # every call is now waiting at the gate
        go.set()
        await asyncio.gather(*tasks)
    return results


def main() -> None:
    base_url, orders_file, calls, results_file = sys.argv[1:5]
    orders = json.loads(Path(orders_file).read_text())
    results = asyncio.run(run(base_url, orders, int(calls)))
    Path(results_file).write_text(json.dumps(results))


if __name__ == "__main__":
    main()
