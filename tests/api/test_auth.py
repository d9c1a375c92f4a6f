"""SUPERSCRIPT_API_TOKEN: every non-GET route needs the bearer token; GET routes never do."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from superscript.ledger import Ledger
from superscript.settings import Settings
from tests.api.checks import account_exists, assert_problem, snapshot, workflow_exists
from tests.api.conftest import shared_app
from tests.conftest import Api, serve_app, unique

TOKEN = "s3cret"
GOOD = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
async def guarded(module_db_url: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    """One guarded app per database for the refusals; none of them may reach Temporal."""
    token = SecretStr(TOKEN)
    async with shared_app(module_db_url, temporal_env.client, api_token=token) as served:
        yield served


@pytest.fixture
async def secured(
    settings: Settings, ledger: Ledger, client: Client, worker: Worker
) -> AsyncIterator[Api]:
    """A guarded app with a worker, for the requests that must succeed."""
    update = {"api_token": SecretStr(TOKEN), "naive_delay": (0.0, 0.0)}
    async with serve_app(settings.model_copy(update=update), ledger, client) as served:
        yield served


def assert_token_not_leaked(*responses: httpx.Response) -> None:
    for response in responses:
        assert TOKEN not in response.text
        assert all(TOKEN not in value for value in response.headers.values())


BAD_HEADERS: list[tuple[str, dict[str, str]]] = [
    ("none", {}),
    ("wrong-token", {"Authorization": "Bearer wrong!"}),
    ("shorter-token", {"Authorization": f"Bearer {TOKEN[:-1]}"}),
    ("longer-token", {"Authorization": f"Bearer {TOKEN}{TOKEN}"}),
    ("token-prefix-of-given", {"Authorization": f"Bearer {TOKEN}x"}),
    ("basic-scheme-base64", {"Authorization": "Basic czNjcmV0"}),
    ("basic-scheme-plain", {"Authorization": f"Basic {TOKEN}"}),
    ("no-scheme", {"Authorization": TOKEN}),
    ("no-space", {"Authorization": f"Bearer{TOKEN}"}),
    ("empty-bearer", {"Authorization": "Bearer "}),
    ("empty-header", {"Authorization": ""}),
    ("other-header", {"X-Api-Token": TOKEN}),
    ("token-as-query-only", {}),
]
ROUTES = ["/accounts", "/naive/orders/{order}/fee", "/orders/{order}/fee"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize(("case", "headers"), BAD_HEADERS, ids=[case for case, _ in BAD_HEADERS])
async def test_non_get_route_without_the_token_is_refused_and_changes_nothing(
    guarded: Api, client: Client, route: str, case: str, headers: dict[str, str]
) -> None:
    ledger = guarded.ledger
    account_id, order_id, new_id = unique("acc"), unique("order"), unique("new")
    await ledger.create_account(account_id, 1_000)
    body: dict[str, Any] = (
        {"account_id": new_id, "balance": 100}
        if route == "/accounts"
        else {"account_id": account_id, "amount": 100}
    )
    path = route.format(order=order_id)
    params = {"token": TOKEN} if case == "token-as-query-only" else None
    before = await snapshot(ledger)

    response = await guarded.http.post(path, json=body, headers=headers, params=params)

    assert_problem(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_token_not_leaked(response)
    assert await snapshot(ledger) == before
    assert not await account_exists(ledger, new_id)
    assert (await ledger.get_account(account_id)).balance == 1_000
    assert await ledger.charges_for(order_id) == 0
    assert await ledger.get_fee_outcome(order_id) is None
    assert not await workflow_exists(client, f"FEE-WF-{order_id}")


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
async def test_other_changing_methods_need_the_token_too(guarded: Api, method: str) -> None:
    before = await snapshot(guarded.ledger)
    response = await guarded.http.request(method, f"/accounts/{unique('acc')}")
    assert_problem(response, 401, "unauthorized")
    assert_token_not_leaked(response)
    assert await snapshot(guarded.ledger) == before


async def test_the_right_token_works_on_every_non_get_route(secured: Api) -> None:
    account_id, naive_order, order_id = unique("acc"), unique("order"), unique("order")

    created = await secured.http.post(
        "/accounts", json={"account_id": account_id, "balance": 1_000}, headers=GOOD
    )
    naive = await secured.http.post(
        f"/naive/orders/{naive_order}/fee",
        json={"account_id": account_id, "amount": 100},
        headers=GOOD,
    )
    charged = await secured.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 50}, headers=GOOD
    )

    assert created.status_code == 201, created.text
    assert naive.status_code == 200, naive.text
    assert naive.json()["balance"] == 900
    assert charged.status_code == 200, charged.text
    assert charged.json()["balance_after"] == 850
    assert_token_not_leaked(created, naive, charged)
    assert await secured.ledger.charges_for(naive_order) == 1
    assert await secured.ledger.charges_for(order_id) == 1


@pytest.mark.parametrize("scheme", ["Bearer", "bearer", "BEARER"])
async def test_the_scheme_is_case_insensitive(guarded: Api, scheme: str) -> None:
    account_id = unique("acc")
    response = await guarded.http.post(
        "/accounts",
        json={"account_id": account_id, "balance": 1},
        headers={"Authorization": f"{scheme} {TOKEN}"},
    )
    assert response.status_code == 201, response.text


async def test_a_wrong_token_refusal_is_not_a_validation_answer(guarded: Api) -> None:
    """Auth comes first: a bad body without the token says 401, not what is wrong with it."""
    response = await guarded.http.post("/accounts", json={"account_id": "a b", "balance": 1.5})
    assert_problem(response, 401, "unauthorized")


async def test_get_routes_need_no_token(secured: Api) -> None:
    account_id, order_id = unique("acc"), unique("order")
    created = await secured.http.post(
        "/accounts", json={"account_id": account_id, "balance": 500}, headers=GOOD
    )
    charged = await secured.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 5}, headers=GOOD
    )
    assert created.status_code == 201 and charged.status_code == 200

    account = await secured.http.get(f"/accounts/{account_id}")
    missing = await secured.http.get(f"/accounts/{unique('missing')}")
    fee = await secured.http.get(f"/orders/{order_id}/fee")
    unknown_fee = await secured.http.get(f"/orders/{unique('order')}/fee")
    health = await secured.http.get("/healthz")
    metrics = await secured.http.get("/metrics")
    spec = await secured.http.get("/openapi.json")
    docs = await secured.http.get("/docs")

    assert account.status_code == 200 and account.json()["balance"] == 495
    assert_problem(missing, 404, "account_not_found")
    assert fee.status_code == 200 and fee.json() == charged.json()
    assert_problem(unknown_fee, 404, "order_not_found")
    assert health.status_code == 200
    assert metrics.status_code == 200
    assert spec.status_code == 200
    assert docs.status_code == 200
    assert_token_not_leaked(
        created, charged, account, missing, fee, unknown_fee, health, metrics, spec, docs
    )


async def test_no_token_configured_means_no_check(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    open_settings = settings.model_copy(update={"api_token": None})
    async with serve_app(open_settings, ledger, client) as api:
        response = await api.http.post(
            "/accounts", json={"account_id": unique("acc"), "balance": 1}
        )
        assert response.status_code == 201, response.text
