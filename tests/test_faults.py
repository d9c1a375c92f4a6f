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
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from superscript.ledger import Ledger
from superscript.ledger.schema import entries
from tests.conftest import unique
from tests.processes import (
    NotReady,
    Service,
    Stack,
    free_port,
    kill_tree,
    start_dev_server,
    wait_dev_server,
    wait_until,
)

SEED = 20_261_129
BATCH_DEADLINE = 150.0
COLLECT = "collect-payment"


# --- the processes -------------------------------------------------------------------


@dataclass
class Temporal:
    """``superscript dev-server`` on fixed ports and data dir, so it can be restarted."""

    log_dir: Path
    data_dir: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    service: Service | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Service:
        self.starts += 1
        self.service = start_dev_server(
            f"temporal-{self.starts}", self.data_dir, self.port, self.ui_port, self.log_dir
        )
        await wait_dev_server(self.service, self.port)
        return self.service

    async def stop(self) -> int:
        assert self.service is not None
        return await self.service.terminate(30)


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


@asynccontextmanager
async def running_stack(
    log_dir: Path, temporal: Temporal, database_url: str, workers: int = 2
) -> AsyncIterator[Stack]:
    stack = Stack.configure(
        log_dir,
        temporal_address=temporal.address,
        database_url=database_url,
        data_dir=log_dir / "data",
        task_queue=unique("tq-faults"),
    )
    try:
        stack.start_api()
        for _ in range(workers):
            stack.start_worker()
        await stack.wait_ready()
        yield stack
    finally:
        stack.kill_all()


@pytest.fixture(scope="module")
async def stack(root: Path, temporal: Temporal) -> AsyncIterator[Stack]:
    """The stack every test here shares: one API and two workers on a SQLite ledger."""
    url = f"sqlite:///{root / 'sqlite' / 'data' / 'ledger.db'}"
    async with running_stack(root / "sqlite", temporal, url) as running:
        yield running


@pytest.fixture(scope="module")
async def books(stack: Stack) -> AsyncIterator[Ledger]:
    """The shared stack's ledger, opened by the test itself to audit the money."""
    opened = await Ledger.open(stack.env["SUPERSCRIPT_DATABASE_URL"])
    try:
        yield opened
    finally:
        await opened.close()


def api_of(stack: Stack) -> list[Service]:
    assert stack.api is not None
    return [stack.api]


def http_client(stack: Stack, connections: int = 50) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=stack.base_url, timeout=90, limits=limits)


# --- batches and the books ----------------------------------------------------------


async def wait_batch(
    http: httpx.AsyncClient, batch_id: str, *watched: Service, seconds: float = BATCH_DEADLINE
) -> dict[str, Any]:
    last: dict[str, Any] = {}

    async def completed() -> bool:
        nonlocal last
        answer = await http.get(f"/batches/{batch_id}")
        assert answer.status_code == 200, answer.text
        last = answer.json()
        return bool(last["status"] == "completed")

    try:
        await wait_until(completed, f"batch {batch_id} completed", seconds, *watched, interval=0.3)
    except NotReady as exc:
        raise AssertionError(f"{exc}\nlast status: {last}") from None
    return last


async def batch_items(http: httpx.AsyncClient, batch_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    after: int | None = None
    while True:
        params: dict[str, int] = {"limit": 1000}
        if after is not None:
            params["after"] = after
        page = await http.get(f"/batches/{batch_id}/items", params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        after = body["next_after"]
        if after is None:
            return items


async def open_accounts(books: Ledger, balances: dict[str, int]) -> None:
    for account_id, balance in balances.items():
        await books.create_account(account_id, balance)


async def audit_fees(
    books: Ledger, openings: dict[str, int], charged: Iterable[tuple[str, str, int]]
) -> None:
    """Each charged order once in the journal, balances = opening - charged, totals kept.

    ``charged`` holds (order_id, account_id, amount) of every order that was charged; any
    other order of these accounts must have no journal entry at all (checked by caller).
    """
    spent: dict[str, int] = defaultdict(int)
    for order_id, account_id, amount in charged:
        assert await books.charges_for(order_id) == 1, order_id
        spent[account_id] += amount
    for account_id, opening in openings.items():
        balance = (await books.get_account(account_id)).balance
        assert balance == opening - spent[account_id], account_id
    total = sum(openings.values())
    assert await books.invariant(list(openings)) == (total, total)


def payments_by_order(stack: Stack) -> Counter[str]:
    """How many times collect-payment ran for each order (one log line per run)."""
    log = Path(stack.env["SUPERSCRIPT_DATA_DIR"]) / "payments.log"
    if not log.exists():
        return Counter()
    return Counter(line.split()[1] for line in log.read_text().splitlines() if line.strip())


def check_script_items(items: list[dict[str, Any]], runs: Counter[str]) -> Counter[str]:
    """No key ran twice; every item decided; a failure always says why; the reasons."""
    reasons: Counter[str] = Counter()
    for item in items:
        order_id = item["order_id"]
        assert runs[order_id] <= 1, f"{order_id} ran {runs[order_id]} times"
        assert item["status"] in ("succeeded", "failed"), item
        if item["status"] == "succeeded":
            assert runs[order_id] == 1, f"{order_id} succeeded without running: {item}"
            assert item["exit_code"] == 0, item
        else:
            # Cut short by a crash (or a lost completion): failed, and it says why.
            assert item.get("detail"), f"failed without a reason: {item}"
            reasons[item["detail"].split(" (")[0].split(";")[0]] += 1
        if runs[order_id] == 0:
            assert item["status"] == "failed", f"{order_id} never ran yet: {item}"
    return reasons


async def submit(http: httpx.AsyncClient, body: dict[str, Any]) -> str:
    answer = await http.post("/batches", json=body)
    assert answer.status_code == 202, answer.text
    batch_id: str = answer.json()["batch_id"]
    return batch_id


def fee_batch(
    rng: random.Random, accounts: list[str], orders: int
) -> tuple[str, list[dict[str, Any]]]:
    items = [
        {
            "order_id": unique(f"fee{n}"),
            "account_id": rng.choice(accounts),
            "amount": rng.randint(1, 100),
        }
        for n in range(orders)
    ]
    return unique("batch-fee"), items


async def check_fee_batch(
    http: httpx.AsyncClient,
    books: Ledger,
    batch_id: str,
    status: dict[str, Any],
    openings: dict[str, int],
) -> list[dict[str, Any]]:
    """Counts add up, each order charged at most once, the books balance."""
    items = await batch_items(http, batch_id)
    assert len(items) == status["total"]
    assert status["pending"] == 0 and status["replayed"] == 0, status
    assert status["succeeded"] + status["failed"] == status["total"], status
    by_status = Counter(item["status"] for item in items)
    assert by_status == Counter({"succeeded": status["succeeded"], "failed": status["failed"]}), (
        by_status
    )
    charged = [
        (item["order_id"], item["account_id"], item["amount"])
        for item in items
        if item["status"] == "succeeded"
    ]
    await audit_fees(books, openings, charged)
    balances = {account: (await books.get_account(account)).balance for account in openings}
    for item in items:
        if item["status"] == "failed":
            assert item["outcome"] == "insufficient_funds", item
            # Balances only fall, so a refused fee is still more than what is left.
            assert item["amount"] > balances[item["account_id"]], item
            assert await books.charges_for(item["order_id"]) == 0, item
    return items


# --- killing workers at random points -------------------------------------------------


async def kill_workers_during(
    stack: Stack,
    rng: random.Random,
    kills: int,
    total: int,
    progress: Callable[[], Awaitable[int]],
    seconds: float = 120.0,
) -> int:
    """SIGKILL a worker (the two in turn) as progress passes each of ``kills`` seeded random
    points of the first 70% of ``total``, starting a fresh worker in its place at once.

    Points are placed by progress, not by time, so they fall inside the work however fast
    the machine is; returns how many kills happened before the work was all done.
    """
    points = sorted(rng.sample(range(1, max(2, total * 7 // 10)), kills))
    killed = 0
    deadline = time.monotonic() + seconds
    while points:
        done = await progress()
        if done >= total:
            break
        if done >= points[0]:
            points.pop(0)
            await asyncio.sleep(rng.uniform(0, 0.2))
            stack.replace_worker(killed % 2)
            killed += 1
        assert time.monotonic() < deadline, f"no progress past {done} of {total}"
        await asyncio.sleep(0.05)
    return killed


def batch_progress(http: httpx.AsyncClient, batch_id: str) -> Callable[[], Awaitable[int]]:
    async def decided() -> int:
        status = (await http.get(f"/batches/{batch_id}")).json()
        return int(status["total"] - status["pending"])

    return decided


# --- (a) a fee batch while workers are killed ----------------------------------------


async def test_fee_batch_survives_killed_workers(stack: Stack, books: Ledger) -> None:
    rng = random.Random(SEED)
    openings = {unique("acc"): rng.randint(4_000, 7_000) for _ in range(40)}
    await open_accounts(books, openings)
    batch_id, items = fee_batch(rng, list(openings), 5_000)

    async with http_client(stack) as http:
        await submit(http, {"batch_id": batch_id, "kind": "fee", "items": items})
        kills = await kill_workers_during(stack, rng, 4, len(items), batch_progress(http, batch_id))
        status = await wait_batch(http, batch_id, *api_of(stack))
        await check_fee_batch(http, books, batch_id, status, openings)

    assert kills >= 2, "the batch ended before the workers could be killed"
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
            runs = payments_by_order(stack)
            return sum(runs[str(item["order_id"])] for item in items)

        kills = await kill_workers_during(stack, rng, 2, len(items), scripts_run)
        status = await wait_batch(http, batch_id, *api_of(stack))
        decided = await batch_items(http, batch_id)

        assert status["total"] == 200 and status["pending"] == 0, status
        assert status["succeeded"] + status["failed"] == 200, status
        assert len(decided) == 200
        runs = payments_by_order(stack)
        assert set(runs) <= {item["order_id"] for item in items}
        reasons = check_script_items(decided, runs)
        # The run record says the same as the item, with the reason.
        for item in decided:
            if item["status"] == "failed":
                run = await http.get(f"/scripts/{COLLECT}/runs/{item['order_id']}")
                assert run.status_code == 200, run.text
                assert run.json()["status"] == "failed" and run.json()["reason"], run.text
    assert kills >= 1, "the batch ended before a worker could be killed"
    # The crashes are the only way a run could fail here.
    assert all("worker" in reason for reason in reasons), reasons
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

        async def charged() -> int:
            async with books.engine.connect() as conn:
                count = await conn.scalar(
                    select(func.count())
                    .select_from(entries)
                    .where(entries.c.account_id.in_(list(openings)))
                )
            return int(count or 0)

        calls = [asyncio.create_task(call(order_id)) for order_id in orders for _ in range(3)]
        go.set()
        kills = await kill_workers_during(stack, rng, 2, len(orders), charged)
        await asyncio.gather(*calls)
        assert kills >= 1, "the orders were all charged before a worker could be killed"

        # An answer still pending after the wait is asked again until it is decided.
        deadline = time.monotonic() + 120
        for order_id, got in answers.items():
            while got[-1].status_code == 202:
                assert time.monotonic() < deadline, f"{order_id} still pending"
                await asyncio.sleep(0.5)
                got.append(await http.post(f"/orders/{order_id}/fee", json=orders[order_id]))

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


async def pollers(client: Client, task_queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=kind,
        )
    )
    return {poller.identity.split("@")[0] for poller in described.pollers}


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
        pids = {str(worker.process.pid) for worker in workers}

        async def both_polling() -> bool:
            workflow_pollers = await pollers(
                tclient, stack.env["SUPERSCRIPT_TASK_QUEUE"], TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
            )
            activity_pollers = await pollers(
                tclient, stack.env["SUPERSCRIPT_TASK_QUEUE"], TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY
            )
            return pids <= workflow_pollers and pids <= activity_pollers

        await wait_until(both_polling, "both workers polling the restarted server", 60, *workers)
        assert stack.workers == workers, "no worker was replaced"

        await check_fee_batch(http, books, fee_id, fee_status, openings)
        assert script_status["pending"] == 0, script_status
        decided = await batch_items(http, script_id)
        assert len(decided) == 100
        check_script_items(decided, payments_by_order(stack))


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
