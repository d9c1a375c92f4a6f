"""Crashes, restarts and a Temporal outage lose nothing.

Every part runs as its own process, exactly as in production: the Temporal dev server
(``superscript dev-server``, persistent on its own data dir), the API and two workers on
one ledger and task queue. Workers are killed with SIGKILL at seeded random moments while
batches and concurrent API calls are in flight, Temporal is stopped and started again
mid-batch, and the API is restarted; each time every order ends decided, charged at most
once, and the books balance.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from superscript.ledger import Ledger
from superscript.scripts.models import NOT_RUN_AGAIN_REASON
from tests.conftest import open_ledger, unique
from tests.processes import Stack, kill_tree, wait_until
from tests.system.audits import (
    ask_until_decided,
    audit_fees,
    batch_items,
    check_fee_batch,
    check_script_items,
    fee_batch,
    open_accounts,
    payments_of,
    submit,
    wait_batch,
)
from tests.system.faults import (
    Temporal,
    api_of,
    arm_workers,
    http_client,
    journal_entries,
    kill_frozen_workers,
    kill_workers_during,
    running_stack,
    wait_polling,
)

SEED = 20_261_129
COLLECT = "collect-payment"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("faults")


@pytest.fixture(scope="module")
async def temporal(root: Path) -> AsyncIterator[Temporal]:
    server = Temporal(log_dir=root, data_dir=root / "temporal")
    await server.start()
    try:
        yield server
    finally:
        if server.service is not None:
            kill_tree(server.service)


@pytest.fixture(scope="module")
async def tclient(temporal: Temporal) -> Client:
    return await Client.connect(temporal.address)


@pytest.fixture(scope="module")
async def stack(root: Path, temporal: Temporal) -> AsyncIterator[Stack]:
    """The stack every test here shares: one API and two workers on a SQLite ledger."""
    url = f"sqlite:///{root / 'sqlite' / 'data' / 'ledger.db'}"
    async with running_stack(root / "sqlite", temporal, url) as running:
        yield running


@pytest.fixture(scope="module")
async def books(stack: Stack) -> AsyncIterator[Ledger]:
    """The shared stack's ledger, opened by the test itself to audit the money."""
    async with open_ledger(stack.env["SUPERSCRIPT_DATABASE_URL"]) as opened:
        yield opened


# --- (a) a fee batch while workers are killed ----------------------------------------


async def test_fee_batch_survives_killed_workers(
    stack: Stack, books: Ledger, tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    openings = {unique("acc"): rng.randint(4_000, 7_000) for _ in range(40)}
    await open_accounts(books, openings)
    batch_id, items = fee_batch(rng, list(openings), 5_000)

    armed = arm_workers(stack, tmp_path / "failpoints")
    async with http_client(stack) as http:
        await submit(http, {"batch_id": batch_id, "kind": "fee", "items": items})
        # Four workers die, each just after committing a chunk it never reports.
        kills = await kill_frozen_workers(stack, 4, armed)
        status = await wait_batch(http, batch_id, *api_of(stack))
        await check_fee_batch(http, books, batch_id, status, openings)

    assert kills == 4
    assert status["succeeded"] > 0 and status["failed"] > 0, status
    await stack.wait_ready()


# --- (b) a script batch while workers are killed -------------------------------------


async def test_script_batch_survives_killed_workers(stack: Stack) -> None:
    rng = random.Random(SEED + 1)
    batch_id = unique("batch-pay")
    items: list[dict[str, Any]] = [
        {"order_id": unique(f"pay{n}"), "args": [str(rng.randint(100, 9_999))]} for n in range(200)
    ]
    async with http_client(stack) as http:
        await submit(
            http, {"batch_id": batch_id, "kind": "script", "script": COLLECT, "items": items}
        )

        async def scripts_run() -> int:
            # Each run appends one line before it pays: progress that moves run by run.
            runs = payments_of(stack)
            return sum(runs[str(item["order_id"])] for item in items)

        kills = await kill_workers_during(stack, rng, 2, len(items), scripts_run)
        status = await wait_batch(http, batch_id, *api_of(stack))
        decided = await batch_items(http, batch_id)

        assert status["total"] == 200 and status["pending"] == 0, status
        assert status["succeeded"] + status["failed"] == 200, status
        assert len(decided) == 200
        runs = payments_of(stack)
        assert set(runs) <= {item["order_id"] for item in items}
        reasons = check_script_items(decided, runs)
        # The run record says the same as the item, with the reason.
        for item in decided:
            if item["status"] == "failed":
                run = await http.get(f"/scripts/{COLLECT}/runs/{item['order_id']}")
                assert run.status_code == 200, run.text
                assert run.json()["status"] == "failed" and run.json()["reason"], run.text
    assert kills >= 1, "the batch ended before a worker could be killed"
    # The crashes are the only way a run could fail here: a run cut by one (the seed's
    # children), or an attempt a killed worker claimed and never ended (the default
    # chunks: the retried chunk counts it as started and does not run the key again).
    crashed = ("worker", NOT_RUN_AGAIN_REASON.split(";")[0])
    assert all(any(why in reason for why in crashed) for reason in reasons), reasons
    await stack.wait_ready()


# --- (c) concurrent duplicate API calls while a worker is killed ---------------------


async def test_concurrent_duplicate_orders_survive_killed_workers(
    stack: Stack, books: Ledger
) -> None:
    rng = random.Random(SEED + 2)
    openings = {unique("acc"): 1_000_000 for _ in range(20)}
    await open_accounts(books, openings)
    orders: dict[str, dict[str, Any]] = {
        unique("ord"): {"account_id": rng.choice(list(openings)), "amount": rng.randint(1, 500)}
        for _ in range(200)
    }
    answers: dict[str, list[httpx.Response]] = defaultdict(list)

    async with http_client(stack, connections=700) as http:
        go = asyncio.Event()

        async def call(order_id: str) -> None:
            await go.wait()
            answers[order_id].append(
                await http.post(f"/orders/{order_id}/fee", json=orders[order_id])
            )

        calls = [asyncio.create_task(call(order_id)) for order_id in orders for _ in range(3)]
        go.set()
        charged = journal_entries(books, list(openings))
        kills = await kill_workers_during(stack, rng, 2, len(orders), charged)
        await asyncio.gather(*calls)
        assert kills >= 1, "the orders were all charged before a worker could be killed"
        await ask_until_decided(http, orders, answers)

    for order_id, got in answers.items():
        codes = [answer.status_code for answer in got]
        assert all(code in (200, 202) for code in codes), (order_id, codes, got[-1].text)
        decided = {answer.text for answer in got if answer.status_code == 200}
        assert len(decided) == 1, (order_id, decided)
        assert codes[-1] == 200, (order_id, codes)
    await audit_fees(
        books,
        openings,
        [(order_id, order["account_id"], order["amount"]) for order_id, order in orders.items()],
    )
    await stack.wait_ready()


# --- (d) Temporal stopped and started again mid-batch --------------------------------


async def test_temporal_restart_mid_batch(
    stack: Stack, books: Ledger, temporal: Temporal, tclient: Client
) -> None:
    rng = random.Random(SEED + 4)
    openings = {unique("acc"): rng.randint(4_000, 7_000) for _ in range(40)}
    await open_accounts(books, openings)
    fee_id, fee_items = fee_batch(rng, list(openings), 5_000)
    script_id = unique("batch-pay")
    script_items = [
        {"order_id": unique(f"pay{n}"), "args": [str(rng.randint(100, 9_999))]} for n in range(100)
    ]
    workers = list(stack.workers)
    assert stack.api is not None
    watched = [stack.api, *workers]

    async with http_client(stack) as http:
        await submit(http, {"batch_id": fee_id, "kind": "fee", "items": fee_items})
        await submit(
            http,
            {"batch_id": script_id, "kind": "script", "script": COLLECT, "items": script_items},
        )

        progress: dict[str, Any] = {}

        async def fees_under_way() -> bool:
            nonlocal progress
            progress = (await http.get(f"/batches/{fee_id}")).json()
            return bool(progress["pending"] < progress["total"])

        await wait_until(fees_under_way, "the fee batch under way", 60, *watched)
        assert await temporal.stop() == 0
        mid_batch = [
            (await http.get(f"/batches/{batch_id}")).json() for batch_id in (fee_id, script_id)
        ]
        assert any(batch["status"] == "running" for batch in mid_batch), mid_batch

        # Temporal is down: the API says so, the workers keep trying.
        health = await http.get("/healthz")
        assert health.status_code == 503 and health.json()["temporal"] != "ok", health.text
        await asyncio.sleep(3)  # the outage
        for worker in workers:
            assert worker.process.poll() is None, f"{worker.name} died:\n{worker.output()}"

        await temporal.start()
        fee_status = await wait_batch(http, fee_id, *watched)
        script_status = await wait_batch(http, script_id, *watched)

        # Both workers polled again by themselves: the restarted server knows them.
        await wait_polling(tclient, stack.env["SUPERSCRIPT_TASK_QUEUE"], workers)
        assert stack.workers == workers, "no worker was replaced"

        await check_fee_batch(http, books, fee_id, fee_status, openings)
        assert script_status["pending"] == 0, script_status
        decided = await batch_items(http, script_id)
        assert len(decided) == 100
        check_script_items(decided, payments_of(stack))


# --- (e) the API restarted ------------------------------------------------------------


async def test_api_restart_answers_the_same(stack: Stack, books: Ledger) -> None:
    account_id, order_id, pay_id = unique("acc"), unique("ord"), unique("pay")
    await books.create_account(account_id, 1_000)
    async with http_client(stack) as http:
        charged = await http.post(
            f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 250}
        )
        assert charged.status_code == 200, charged.text
        refused = await http.post(
            f"/orders/{order_id}-big/fee", json={"account_id": account_id, "amount": 5_000}
        )
        assert refused.status_code == 402, refused.text
        paid = await http.post(f"/scripts/{COLLECT}/runs", json={"order_id": pay_id, "args": ["7"]})
        assert paid.status_code == 200, paid.text
        before = [
            await http.get(f"/orders/{order_id}/fee"),
            await http.get(f"/orders/{order_id}-big/fee"),
            await http.get(f"/scripts/{COLLECT}/runs/{pay_id}"),
        ]
        assert [answer.text for answer in before] == [charged.text, refused.text, paid.text]

    assert await stack.restart_api() == 0

    async with http_client(stack) as http:
        after = [
            await http.get(f"/orders/{order_id}/fee"),
            await http.get(f"/orders/{order_id}-big/fee"),
            await http.get(f"/scripts/{COLLECT}/runs/{pay_id}"),
        ]
        again = await http.post(
            f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 250}
        )
    assert [(a.status_code, a.text) for a in after] == [(b.status_code, b.text) for b in before]
    assert again.text == charged.text
    assert await books.charges_for(order_id) == 1
    assert (await books.get_account(account_id)).balance == 750


# --- and everything still stops cleanly ----------------------------------------------


async def test_stack_stops_cleanly(stack: Stack, temporal: Temporal) -> None:
    codes = await stack.stop()
    assert set(codes.values()) == {0}, f"{codes}\n{stack.logs()}"
    assert await temporal.stop() == 0
