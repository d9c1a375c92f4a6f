"""An order's history: from the records, one charge, whoever asked and however often."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client

from superscript.ledger import Decider, FeeOrder, Ledger
from superscript.settings import Settings
from tests.api.checks import assert_problem
from tests.batches.submitting import finish, submit
from tests.conftest import Api, serve_app, unique


async def history(api: Api, order_id: str) -> dict[str, Any]:
    response = await api.http.get(f"/orders/{order_id}/history")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def of_kind(body: dict[str, Any], event: str) -> list[dict[str, Any]]:
    return [item for item in body["events"] if item["event"] == event]


def oldest_first(body: dict[str, Any]) -> bool:
    """By the second: the ledger keeps whole seconds, Temporal's times are finer."""
    seconds = [datetime.fromisoformat(item["at"]).replace(microsecond=0) for item in body["events"]]
    return seconds == sorted(seconds)


async def test_charged_by_the_api_then_replayed_by_a_batch_is_one_charge(
    api: Api, client: Client
) -> None:
    account_id, order_id, other = unique("acc"), unique("order"), unique("order")
    await api.ledger.create_account(account_id, 1_000)
    charged = await api.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 100}
    )
    assert charged.status_code == 200, charged.text
    before = await history(api, order_id)

    batch_id = unique("batch")
    items = [{"order_id": o, "account_id": account_id, "amount": 100} for o in (order_id, other)]
    await submit(api, {"batch_id": batch_id, "kind": "fee", "items": items})
    assert (await finish(api, client, batch_id))["replayed"] == 1
    after = await history(api, order_id)

    for body in (before, after):
        assert body["order_id"] == order_id and body["temporal"] == "ok"
        assert body["outcome"]["status"] == "charged" and body["outcome"]["via"] == "api"
        assert body["outcome"]["balance_after"] == 900 and body["charges"] == 1
        assert body["refunds"] == [] and oldest_first(body)
        [decided] = of_kind(body, "decided")
        assert decided["via"] == "api" and decided["workflow_id"] == f"FEE-WF-{order_id}"
        assert decided["run_id"] == charged.json()["run_id"]
        [entry] = of_kind(body, "journal_entry")
        assert entry["amount"] == -100 and entry["balance_after"] == 900
    assert of_kind(before, "batch") == []
    [carried] = of_kind(after, "batch")
    assert carried["batch_id"] == batch_id and carried["status"] == "replayed"
    assert carried["outcome"] == "charged"
    workflows = {item["workflow_id"]: item for item in of_kind(after, "workflow")}
    assert set(workflows) == {f"FEE-WF-{order_id}", f"BATCH-WF-{batch_id}"}
    assert workflows[f"FEE-WF-{order_id}"]["status"] == "completed"
    assert workflows[f"FEE-WF-{order_id}"]["run_id"] == charged.json()["run_id"]
    assert await api.ledger.charges_for(order_id) == 1
    story = [(item["event"], item.get("workflow_id")) for item in after["events"]]
    assert story == [
        ("workflow", f"FEE-WF-{order_id}"),
        ("decided", f"FEE-WF-{order_id}"),
        ("journal_entry", None),
        ("batch", f"BATCH-WF-{batch_id}"),
        ("workflow", f"BATCH-WF-{batch_id}"),
    ]

    decided_by_batch = await history(api, other)
    assert decided_by_batch["outcome"]["via"] == f"batch:{batch_id}"
    assert [item["status"] for item in of_kind(decided_by_batch, "batch")] == ["succeeded"]
    listed = await api.http.get("/orders", params={"batch_id": batch_id})
    assert [item["order_id"] for item in listed.json()["items"]] == [other]


async def test_an_unknown_order_has_no_history(api: Api) -> None:
    response = await api.http.get(f"/orders/{unique('nothing')}/history")
    assert_problem(response, 404, "order_not_found")


async def test_with_temporal_down_the_records_still_answer(
    settings: Settings, ledger: Ledger
) -> None:
    """A client of a port where nothing listens: the history says Temporal is unavailable."""
    account_id, order_id = unique("acc"), unique("order")
    await ledger.create_account(account_id, 50)
    order = FeeOrder(order_id=order_id, account_id=account_id, amount=80)
    await ledger.apply_fee(order, Decider(workflow_id=f"FEE-WF-{order_id}", run_id="r-1"))
    nowhere = await Client.connect("127.0.0.1:9", lazy=True)

    async with serve_app(settings, ledger, nowhere) as down:
        body = await history(down, order_id)

    assert body["temporal"] == "unavailable"
    assert body["outcome"]["status"] == "insufficient_funds" and body["charges"] == 0
    assert [item["event"] for item in body["events"]] == ["decided"]


async def test_a_script_run_is_in_its_orders_history(api: Api) -> None:
    order_id = unique("order")
    ran = await api.http.post("/scripts/echo-args/runs", json={"order_id": order_id, "args": ["a"]})
    assert ran.status_code == 200, ran.text

    body = await history(api, order_id)

    assert body["outcome"] is None and body["charges"] == 0
    [run] = of_kind(body, "script_run")
    assert run["script"] == "echo-args" and run["status"] == "succeeded"
    assert run["exit_code"] == 0 and run["run_id"] == ran.json()["run_id"]
    workflows = of_kind(body, "workflow")
    assert [(w["workflow_id"], w["status"]) for w in workflows] == [
        (f"SCRIPT-WF-echo-args/{order_id}", "completed")
    ]
