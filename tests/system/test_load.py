"""1,000 concurrent duplicate fee calls over 100 orders, from a process of their own."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.conftest import NewStack, open_ledger, unique
from tests.processes import Stack
from tests.system.audits import audit_fees

ORDERS = 100
CALLS_PER_ORDER = 10
GENERATOR = Path(__file__).parent / "load_generator.py"
GENERATOR_DEADLINE = 240.0


async def generate_load(
    stack: Stack, orders: dict[str, dict[str, Any]], work_dir: Path
) -> list[dict[str, Any]]:
    """Run the load generator against the stack's API: one result per call it made."""
    orders_file, results_file = work_dir / "orders.json", work_dir / "results.json"
    orders_file.write_text(json.dumps(orders))
    generator = await asyncio.create_subprocess_exec(
        sys.executable,
        str(GENERATOR),
        stack.base_url,
        str(orders_file),
        str(CALLS_PER_ORDER),
        str(results_file),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(generator.communicate(), GENERATOR_DEADLINE)
    except TimeoutError:
        generator.kill()
        await generator.wait()
        raise AssertionError(f"the load did not finish in {GENERATOR_DEADLINE}s") from None
    assert generator.returncode == 0, output.decode(errors="replace")
    results: list[dict[str, Any]] = json.loads(results_file.read_text())
    return results


def check_results(results: list[dict[str, Any]], orders: dict[str, dict[str, Any]]) -> None:
    """Every call answered 200, without a server error; each order with one body."""
    assert len(results) == ORDERS * CALLS_PER_ORDER
    errors = [result for result in results if "error" in result]
    assert not errors, errors[:5]
    server_errors = [result for result in results if result["status"] >= 500]
    assert not server_errors, server_errors[:5]
    bodies: dict[str, set[str]] = defaultdict(set)
    for result in results:
        assert result["status"] == 200, result
        bodies[result["order_id"]].add(result["body"])
    assert set(bodies) == set(orders)
    assert all(len(answers) == 1 for answers in bodies.values()), bodies


async def test_thousand_concurrent_duplicate_calls(
    tmp_path: Path, new_sqlite_stack: NewStack, sqlite_url: str
) -> None:
    stack = new_sqlite_stack()
    rng = random.Random(1_000)
    openings = {unique("acc"): 100_000 for _ in range(10)}
    orders: dict[str, dict[str, Any]] = {
        unique("ord"): {"account_id": rng.choice(list(openings)), "amount": rng.randint(1, 999)}
        for _ in range(ORDERS)
    }
    async with open_ledger(sqlite_url) as ledger:
        stack.start_api()
        stack.start_worker()
        await stack.wait_ready()
        for account_id, balance in openings.items():
            await ledger.create_account(account_id, balance)

        check_results(await generate_load(stack, orders, tmp_path), orders)

        # Exactly one charge per order, the balances and the totals agree.
        charged = [(order_id, o["account_id"], o["amount"]) for order_id, o in orders.items()]
        await audit_fees(ledger, openings, charged)

        codes = await stack.stop()
        assert set(codes.values()) == {0}, stack.logs()
    for service in stack.services():
        bad = [
            line for line in service.output().splitlines() if "ERROR" in line or "Traceback" in line
        ]
        assert not bad, f"{service.name}:\n" + "\n".join(bad[:20])
