"""The real commands as separate processes: API, workers, ``up``, and a worker killed mid-way."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import psutil
from temporalio.client import Client

from superscript.fees.client import start_fee_workflow
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger import FeeOrder, Ledger
from superscript.settings import Settings
from tests.commands import api_url, charge_a_new_account, start_serving, up_ports
from tests.conftest import NewStack, StartApiAndWorker, at_once, unique
from tests.processes import service_env, wait_for_file, wait_healthy


async def test_api_and_worker_as_separate_processes(
    api_and_worker: StartApiAndWorker, ledger: Ledger
) -> None:
    stack = await api_and_worker()
    account_id, order_id = unique("acc"), unique("order")
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        created = await http.post("/accounts", json={"account_id": account_id, "balance": 500})
        assert created.status_code == 201
        fee = {"account_id": account_id, "amount": 125}
        responses = await at_once(20, lambda _: http.post(f"/orders/{order_id}/fee", json=fee))

    assert {response.status_code for response in responses} == {200}
    assert len({response.text for response in responses}) == 1
    assert responses[0].json()["balance_after"] == 375
    assert await ledger.charges_for(order_id) == 1
    assert (await ledger.get_account(account_id)).balance == 375
    codes = await stack.stop()
    assert list(codes.values()) == [0, 0], stack.logs()


async def test_worker_killed_after_commit_charges_once(
    tmp_path: Path, new_stack: NewStack, client: Client, ledger: Ledger, settings: Settings
) -> None:
    """SIGKILL between the ledger commit and the completion report: the retry replays."""
    failpoints = tmp_path / "failpoints"
    stack = new_stack()
    account_id = unique("acc")
    await ledger.create_account(account_id, 1_000)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=400)
    doomed = stack.start_worker(
        {"SUPERSCRIPT_FAILPOINTS": "fee-after-commit", "SUPERSCRIPT_FAILPOINT_DIR": str(failpoints)}
    )
    handle = await start_fee_workflow(client, order, settings.task_queue)
    await wait_for_file(failpoints / "fee-after-commit.hit", doomed)
    doomed.kill()

    # The charge is committed, but Temporal never heard back about it.
    assert await ledger.charges_for(order.order_id) == 1
    assert (await ledger.get_account(account_id)).balance == 600

    survivor = stack.start_worker()
    try:
        outcome = await asyncio.wait_for(handle.result(), 60)
    finally:
        assert await survivor.terminate() == 0
    assert outcome.status == "charged"
    assert outcome.balance_after == 600
    assert await ledger.charges_for(order.order_id) == 1
    assert (await ledger.get_account(account_id)).balance == 600
    assert await ledger.invariant([account_id]) == (1_000, 1_000)


async def test_api_worker_killed_after_commit_charges_once(
    tmp_path: Path, new_stack: NewStack, client: Client, ledger: Ledger
) -> None:
    """The eager path: the API's own worker runs the fee's first workflow task (its local
    activity inside) and is SIGKILLed with the API between the ledger commit and the task's
    completion. The task times out, a separate worker runs it again: charged once."""
    failpoints = tmp_path / "failpoints"
    stack = new_stack(
        SUPERSCRIPT_FAILPOINTS="fee-after-commit", SUPERSCRIPT_FAILPOINT_DIR=str(failpoints)
    )
    account_id, order_id = unique("acc"), unique("order")
    await ledger.create_account(account_id, 1_000)
    doomed = stack.start_api()
    await wait_healthy(stack.base_url, doomed)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        call = asyncio.create_task(
            http.post(f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 400})
        )
        await wait_for_file(failpoints / "fee-after-commit.hit", doomed)
        doomed.kill()
        cut = (await asyncio.gather(call, return_exceptions=True))[0]
    assert isinstance(cut, httpx.TransportError), cut
    assert await ledger.charges_for(order_id) == 1

    survivor = stack.start_worker({"SUPERSCRIPT_FAILPOINTS": ""})
    try:
        outcome = await asyncio.wait_for(
            client.get_workflow_handle_for(FeeDeductionWorkflow.run, f"FEE-WF-{order_id}").result(),
            60,
        )
    finally:
        assert await survivor.terminate() == 0
    assert outcome.status == "charged" and outcome.balance_after == 600
    assert await ledger.charges_for(order_id) == 1
    assert (await ledger.get_account(account_id)).balance == 600


async def test_up_runs_everything_persists_and_stops_cleanly(tmp_path: Path) -> None:
    """``superscript up`` on its embedded dev server, stopped and started again on its data."""
    env = service_env(SUPERSCRIPT_DATA_DIR=str(tmp_path / "data"), **up_ports())
    account_id, order_id = unique("acc"), unique("order")
    fee = {"account_id": account_id, "amount": 40}

    first = await start_serving("up-1", ["up"], env, tmp_path)
    try:
        children = psutil.Process(first.process.pid).children(recursive=True)
        assert any("temporal" in child.name() for child in children)
        charged = await charge_a_new_account(env, order_id, fee)
    finally:
        assert await first.terminate() == 0, first.output()
    assert "API docs" in first.output() and "Web UI" in first.output()
    assert not [child for child in children if child.is_running()]

    second = await start_serving("up-2", ["up"], env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
            again = await http.post(f"/orders/{order_id}/fee", json=fee)
            balance = (await http.get(f"/accounts/{account_id}")).json()["balance"]
    finally:
        assert await second.terminate() == 0, second.output()
    assert again.status_code == 200 and again.json() == charged.json()
    assert balance == 50
