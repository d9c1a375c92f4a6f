"""The eager path under faults: the API runs the fee workflows it starts (its own worker),
so the API itself is SIGKILLed and restarted at seeded moments while duplicate fee calls
are in flight. Callers whose connection dies ask again once an API answers, as a client
does. Every order ends decided with one identical answer, charged once, books balanced.
"""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import httpx

from superscript.ledger import Ledger
from tests.conftest import NewStack, unique
from tests.processes import NotReady, Stack, wait_healthy
from tests.system.audits import audit_fees, open_accounts
from tests.system.faults import http_client, journal_entries

SEED = 20_261_202
ORDERS = 120
CALLERS = 3
KILLS = 2


async def _ask(
    http: httpx.AsyncClient, stack: Stack, order_id: str, body: dict[str, Any]
) -> httpx.Response:
    """POST until an answer that decides the order; a cut connection, a 503 from an API
    shutting down or not yet connected, or a 202 is asked again once an API is healthy."""
    while True:
        try:
            answer = await http.post(f"/orders/{order_id}/fee", json=body)
            if answer.status_code not in (202, 503):
                return answer
        except httpx.TransportError:
            pass
        api = stack.api
        assert api is not None
        try:
            await wait_healthy(stack.base_url, api, 120)
        except NotReady:
            if stack.api is api:
                raise  # it died by itself, not by the test's kill


async def _kill_api_during(stack: Stack, rng: random.Random, charged: Any, total: int) -> int:
    """SIGKILL the API (and so its worker) as the charges pass seeded points of the first
    60%, starting a new API at once; how many kills happened before every order was done."""
    points = sorted(rng.sample(range(1, total * 6 // 10), KILLS))
    killed = 0
    while points and await charged() < total:
        if await charged() >= points[0]:
            points.pop(0)
            assert stack.api is not None
            stack.api.kill()
            stack.retired.append(stack.api)
            stack.start_api()
            killed += 1
        await asyncio.sleep(0.02)
    return killed


async def test_duplicate_orders_survive_a_killed_api(new_stack: NewStack, ledger: Ledger) -> None:
    rng = random.Random(SEED)
    openings = {unique("acc"): 1_000_000 for _ in range(10)}
    await open_accounts(ledger, openings)
    orders: dict[str, dict[str, Any]] = {
        unique("ord"): {"account_id": rng.choice(list(openings)), "amount": rng.randint(1, 500)}
        for _ in range(ORDERS)
    }
    # The API hosts its worker (the default); one more worker finishes what a killed API
    # leaves (a fee task cut after its commit times out and is run again there).
    stack = new_stack()
    stack.start_worker()
    await wait_healthy(stack.base_url, stack.start_api())
    answers: dict[str, list[httpx.Response]] = defaultdict(list)
    async with http_client(stack, connections=ORDERS * CALLERS) as http:
        go = asyncio.Event()

        async def call(order_id: str) -> None:
            await go.wait()
            answers[order_id].append(await _ask(http, stack, order_id, orders[order_id]))

        calls = [asyncio.create_task(call(o)) for o in orders for _ in range(CALLERS)]
        go.set()
        kills = await _kill_api_during(stack, rng, journal_entries(ledger, list(openings)), ORDERS)
        await asyncio.gather(*calls)
    assert kills >= 1, "every order was charged before the API could be killed"

    for order_id, got in answers.items():
        assert {answer.status_code for answer in got} == {200}, (order_id, got[-1].text)
        assert len({answer.text for answer in got}) == 1, order_id
    await audit_fees(
        ledger, openings, [(o, order["account_id"], order["amount"]) for o, order in orders.items()]
    )
