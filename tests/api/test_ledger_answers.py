"""Answers come from the ledger: a Temporal history written for another ledger is no answer.

As when a data dir's embedded Temporal, first used with ledger A, is served with ledger B:
the closed ``FEE-WF-*`` and ``SCRIPT-WF-*`` runs hold A's results, which B never recorded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from superscript.ledger import Ledger
from superscript.scripts.records import ScriptRuns
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.api.checks import assert_problem
from tests.conftest import open_ledger, serve_app, unique
from tests.scripts.runs import payment_lines


@pytest.fixture
async def ledger_b(tmp_path: Path) -> AsyncIterator[Ledger]:
    """A fresh database that has never seen any order."""
    async with open_ledger(f"sqlite:///{tmp_path / 'ledger-b.db'}") as opened:
        yield opened


def assert_not_in_ledger(response: httpx.Response, workflow_id: str) -> dict[str, Any]:
    body = assert_problem(response, 503, "workflow_result_not_in_ledger")
    assert body["detail"].startswith(f"{workflow_id} returned ")
    assert "this ledger does not hold" in body["detail"]
    return body


async def test_a_fee_history_of_another_ledger_never_answers(
    client: Client, ledger: Ledger, ledger_b: Ledger, settings: Settings
) -> None:
    account_id, order_id = unique("acc"), unique("order")
    fee = {"account_id": account_id, "amount": 100}

    # Ledger A with its worker: the order is charged.
    async with build_worker(client, ledger, settings), serve_app(settings, ledger, client) as a:
        await ledger.create_account(account_id, 1_000)
        charged = await a.http.post(f"/orders/{order_id}/fee", json=fee)
        assert charged.status_code == 200 and charged.json()["status"] == "charged"

    # Ledger B on the same Temporal and task queue; no worker is needed to read closed runs.
    await ledger_b.create_account(account_id, 1_000)
    async with serve_app(settings, ledger_b, client) as b:
        posted = await b.http.post(f"/orders/{order_id}/fee", json=fee)
        fetched = await b.http.get(f"/orders/{order_id}/fee")
        assert_not_in_ledger(posted, f"FEE-WF-{order_id}")
        assert_not_in_ledger(fetched, f"FEE-WF-{order_id}")
        assert "nothing was charged here" in posted.json()["detail"]

    assert (await ledger_b.get_account(account_id)).balance == 1_000
    assert await ledger_b.charges_for(order_id) == 0
    assert await ledger_b.get_fee_outcome(order_id) is None
    async with serve_app(settings, ledger, client) as a:
        assert (await a.http.get(f"/orders/{order_id}/fee")).json() == charged.json()


async def test_a_script_history_of_another_ledger_never_answers(
    client: Client, ledger: Ledger, ledger_b: Ledger, settings: Settings
) -> None:
    order_id = unique("order")
    run = {"order_id": order_id, "args": ["700", "EUR"]}
    path = f"/scripts/collect-payment/runs/{order_id}"

    async with build_worker(client, ledger, settings), serve_app(settings, ledger, client) as a:
        ran = await a.http.post("/scripts/collect-payment/runs", json=run)
        assert ran.status_code == 200 and ran.json()["status"] == "succeeded"
    assert len(payment_lines(settings)) == 1
    workflow_id = ran.json()["workflow_id"]

    async with serve_app(settings, ledger_b, client) as b:
        before = await b.http.get(path)
        posted = await b.http.post("/scripts/collect-payment/runs", json=run)
        fetched = await b.http.get(path)
        # Ledger B has no record at all at first, then the POST's pending claim.
        assert_not_in_ledger(before, workflow_id)
        assert_not_in_ledger(posted, workflow_id)
        assert_not_in_ledger(fetched, workflow_id)

    record = await ScriptRuns(ledger_b.engine).get("collect-payment", order_id)
    assert record is not None and record.result is None
    assert len(payment_lines(settings)) == 1
    async with serve_app(settings, ledger, client) as a:
        assert (await a.http.get(path)).json() == ran.json()
