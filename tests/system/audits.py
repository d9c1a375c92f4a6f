"""The audit after a fault: batches read back in full, every item decided, each order
charged at most once, scripts run at most once per key, and the books balanced."""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from superscript.ledger import Ledger
from tests.conftest import unique
from tests.processes import (
    NotReady,
    Service,
    Stack,
    wait_until,
)
from tests.script_files import payments_by_order

BATCH_DEADLINE = 150.0


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


def payments_of(stack: Stack) -> Counter[str]:
    """How many times collect-payment ran for each order (one log line per run)."""
    return payments_by_order(Path(stack.env["SUPERSCRIPT_DATA_DIR"]))


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


async def ask_until_decided(
    http: httpx.AsyncClient,
    orders: dict[str, dict[str, Any]],
    answers: dict[str, list[httpx.Response]],
    seconds: float = 120,
) -> None:
    """An order whose last answer is still pending (202) is asked again until it is decided;
    each new answer goes to its list in ``answers``."""
    deadline = time.monotonic() + seconds
    for order_id, got in answers.items():
        while got[-1].status_code == 202:
            assert time.monotonic() < deadline, f"{order_id} still pending"
            await asyncio.sleep(0.5)
            got.append(await http.post(f"/orders/{order_id}/fee", json=orders[order_id]))
