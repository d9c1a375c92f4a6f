"""1,000 concurrent duplicate fee calls over 100 orders, from a process of their own."""

from __future__ import annotations

import asyncio
import json
import random
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from superscript.ledger import Ledger
from tests.conftest import unique
from tests.processes import Stack

ORDERS = 100
CALLS_PER_ORDER = 10
GENERATOR = Path(__file__).parent / "load_generator.py"
GENERATOR_DEADLINE = 240.0


async def test_thousand_concurrent_duplicate_calls(tmp_path: Path, temporal_address: str) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    stack = Stack.configure(
        tmp_path,
        temporal_address=temporal_address,
        database_url=url,
        data_dir=tmp_path,
        task_queue=unique("tq-load"),
    )
    rng = random.Random(1_000)
    openings = {unique("acc"): 100_000 for _ in range(10)}
    orders: dict[str, dict[str, Any]] = {
        unique("ord"): {"account_id": rng.choice(list(openings)), "amount": rng.randint(1, 999)}
        for _ in range(ORDERS)
    }
    orders_file, results_file = tmp_path / "orders.json", tmp_path / "results.json"
    orders_file.write_text(json.dumps(orders))
    ledger = await Ledger.open(url)
    try:
        stack.start_api()
        stack.start_worker()
        await stack.wait_ready()
        for account_id, balance in openings.items():
            await ledger.create_account(account_id, balance)

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

        # Exactly one charge per order, the balances and the totals agree.
        charges = [await ledger.charges_for(order_id) for order_id in orders]
        assert charges == [1] * ORDERS
        spent: dict[str, int] = defaultdict(int)
        for order in orders.values():
            spent[order["account_id"]] += order["amount"]
        for account_id, opening in openings.items():
            balance = (await ledger.get_account(account_id)).balance
            assert balance == opening - spent[account_id]
        total = sum(openings.values())
        assert await ledger.invariant(list(openings)) == (total, total)

        codes = await stack.stop()
        assert set(codes.values()) == {0}, stack.logs()
    finally:
        stack.kill_all()
        await ledger.close()
    for service in stack.services():
        bad = [
            line for line in service.output().splitlines() if "ERROR" in line or "Traceback" in line
        ]
        assert not bad, f"{service.name}:\n" + "\n".join(bad[:20])
