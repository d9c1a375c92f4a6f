"""The fee routes over HTTP, on the real app, ledger and dev server."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from superscript.ledger import Ledger
from superscript.settings import Settings
from tests.api.checks import PROBLEM, assert_problem
from tests.conftest import Api, at_once, serve_app, unique


async def open_account(api: Api, balance: int) -> str:
    account_id = unique("acc")
    response = await api.http.post("/accounts", json={"account_id": account_id, "balance": balance})
    assert response.status_code == 201, response.text
    assert response.json() == {"account_id": account_id, "balance": balance}
    return account_id


async def balance_of(api: Api, account_id: str) -> int:
    response = await api.http.get(f"/accounts/{account_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return int(body["balance"])


async def test_naive_fee_charges_twice_for_one_order(api: Api) -> None:
    """The seed's TestNonIdempotency: the same order ID deducts twice."""
    account_id = await open_account(api, 1_000)
    order_id = unique("order")
    body = {"account_id": account_id, "amount": 100}

    responses = await at_once(
        2, lambda _: api.http.post(f"/naive/orders/{order_id}/fee", json=body)
    )

    assert [response.status_code for response in responses] == [200, 200]
    assert sorted(response.json()["balance"] for response in responses) == [800, 900]
    assert await balance_of(api, account_id) == 800
    assert await api.ledger.charges_for(order_id) == 2


async def test_twenty_concurrent_duplicates_charge_once_with_one_body(api: Api) -> None:
    account_id = await open_account(api, 1_000)
    order_id = unique("order")
    body = {"account_id": account_id, "amount": 100}

    responses = await at_once(20, lambda _: api.http.post(f"/orders/{order_id}/fee", json=body))

    assert {response.status_code for response in responses} == {200}
    bodies = [response.json() for response in responses]
    assert all(body == bodies[0] for body in bodies)
    body = bodies[0]
    assert body["order_id"] == order_id
    assert body["account_id"] == account_id
    assert body["amount"] == 100
    assert body["balance_after"] == 900
    assert body["status"] == "charged"
    assert body["workflow_id"] == f"FEE-WF-{order_id}"
    assert body["run_id"]
    assert await balance_of(api, account_id) == 900
    assert await api.ledger.charges_for(order_id) == 1

    later = await api.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 100}
    )
    fetched = await api.http.get(f"/orders/{order_id}/fee")
    assert later.status_code == fetched.status_code == 200
    assert later.json() == fetched.json() == body


async def test_reused_order_with_other_payload_is_refused(api: Api) -> None:
    account_id = await open_account(api, 1_000)
    other_account = await open_account(api, 1_000)
    order_id = unique("order")
    first = await api.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 100}
    )
    assert first.status_code == 200

    for payload in (
        {"account_id": account_id, "amount": 99},
        {"account_id": other_account, "amount": 100},
    ):
        response = await api.http.post(f"/orders/{order_id}/fee", json=payload)
        assert_problem(response, 422, "idempotency_key_reused")

    assert await balance_of(api, account_id) == 900
    assert await balance_of(api, other_account) == 1_000
    assert await api.ledger.charges_for(order_id) == 1


async def test_failures_are_the_orders_outcome_and_are_replayed(api: Api) -> None:
    account_id = await open_account(api, 50)
    poor_order, ghost_order = unique("order"), unique("order")
    ghost_account = unique("ghost")

    poor = await api.http.post(
        f"/orders/{poor_order}/fee", json={"account_id": account_id, "amount": 80}
    )
    ghost = await api.http.post(
        f"/orders/{ghost_order}/fee", json={"account_id": ghost_account, "amount": 1}
    )
    assert poor.status_code == 402 and poor.json()["code"] == "insufficient_funds"
    assert ghost.status_code == 404 and ghost.json()["code"] == "account_not_found"
    assert poor.headers["content-type"].startswith(PROBLEM)

    # Funds or the account appearing later change nothing: the outcome was decided.
    await api.http.post("/accounts", json={"account_id": ghost_account, "balance": 500})
    poor_again = await api.http.post(
        f"/orders/{poor_order}/fee", json={"account_id": account_id, "amount": 80}
    )
    ghost_again = await api.http.post(
        f"/orders/{ghost_order}/fee", json={"account_id": ghost_account, "amount": 1}
    )
    assert poor_again.status_code == 402 and poor_again.json() == poor.json()
    assert ghost_again.status_code == 404 and ghost_again.json() == ghost.json()
    assert (await api.http.get(f"/orders/{poor_order}/fee")).json() == poor.json()
    assert await balance_of(api, account_id) == 50
    assert await balance_of(api, ghost_account) == 500


async def test_unknown_order_is_404(api: Api) -> None:
    response = await api.http.get(f"/orders/{unique('order')}/fee")
    assert response.status_code == 404
    assert response.json()["code"] == "order_not_found"


async def test_pending_when_no_worker_decides_in_time(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    """No worker polls this queue: the POST answers 202 and the order stays undecided."""
    idle = settings.model_copy(update={"task_queue": unique("idle"), "result_wait_seconds": 0.5})
    async with serve_app(idle, ledger, client) as api:
        account_id = await open_account(api, 100)
        order_id = unique("order")

        posted = await api.http.post(
            f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 10}
        )
        fetched = await api.http.get(f"/orders/{order_id}/fee")

        expected = {"order_id": order_id, "status": "pending", "workflow_id": f"FEE-WF-{order_id}"}
        assert posted.status_code == 202 and posted.json() == expected
        assert fetched.status_code == 202 and fetched.json() == expected
        assert await balance_of(api, account_id) == 100

        # Closed without an outcome: a 503 naming the status by name, never a charge.
        await client.get_workflow_handle(f"FEE-WF-{order_id}").terminate("test cleanup")
        after = await api.http.get(f"/orders/{order_id}/fee")
        again = await api.http.post(
            f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 10}
        )
        assert after.status_code == again.status_code == 503
        assert after.json()["code"] == again.json()["code"] == "workflow_failed"
        assert f"FEE-WF-{order_id} closed (TERMINATED) " in after.json()["detail"]
        assert await balance_of(api, account_id) == 100


async def test_healthz_and_metrics(api: Api) -> None:
    health = await api.http.get("/healthz")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "temporal": "ok", "database": "ok"}

    await api.http.get(f"/accounts/{unique('missing')}")
    metrics = await api.http.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    text = metrics.text
    assert (
        'superscript_http_requests_total{method="GET",route="/accounts/{account_id}",status="404"}'
        in text
    )
    assert "superscript_http_request_duration_seconds_bucket" in text


async def test_openapi_and_docs(api: Api) -> None:
    spec = await api.http.get("/openapi.json")
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    for path in ("/orders/{order_id}/fee", "/naive/orders/{order_id}/fee", "/accounts", "/healthz"):
        assert path in paths
    docs = await api.http.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
