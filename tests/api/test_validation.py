"""Bad input on every route: a 4xx problem document, and nothing changed anywhere.

The contract: identifiers are 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``; ``amount``
is an integer from 1 to 10^15 and ``balance`` from 0 to 10^15; a float, a string, a bool
or a number outside those bounds is a ``422 validation_error``; nothing is changed by a
request that gets a 4xx; every error is ``application/problem+json`` with a ``code``.
"""

import json
import re
import string
import uuid

import pytest
from temporalio.client import Client

from superscript.api.schemas import ID_PATTERN, MAX_AMOUNT
from tests.api.bad_inputs import ACCOUNT, BAD_CASES, NEW, ORDER, Bad, send
from tests.api.checks import account_exists, assert_problem, snapshot, workflow_exists
from tests.conftest import Api, unique

OPENING_BALANCE = 1_000
ALLOWED = string.ascii_uppercase + string.ascii_lowercase + string.digits + "._:-"


@pytest.mark.parametrize(
    "bad", [pytest.param(bad, id=case, marks=bad.marks) for case, bad in BAD_CASES]
)
async def test_bad_input_is_a_problem_and_changes_nothing(
    quiet_api: Api, client: Client, bad: Bad
) -> None:
    api, ledger = quiet_api, quiet_api.ledger
    account_id, order_id, new_id = unique("acc"), unique("order"), unique("new")
    await ledger.create_account(account_id, OPENING_BALANCE)
    names = {ACCOUNT: account_id, ORDER: order_id, NEW: new_id}
    before = await snapshot(ledger)

    response = await send(api.http, bad, names)

    assert_problem(response, bad.status, bad.code)
    assert await snapshot(ledger) == before
    assert (await ledger.get_account(account_id)).balance == OPENING_BALANCE
    assert await ledger.charges_for(order_id) == 0
    assert await ledger.get_fee_outcome(order_id) is None
    assert not await account_exists(ledger, new_id)
    assert not await workflow_exists(client, f"FEE-WF-{order_id}")


def full_id() -> str:
    """128 characters, unique, using every allowed character."""
    value = (uuid.uuid4().hex[:16] + ALLOWED * 2)[:128]
    assert len(value) == 128 and set(ALLOWED) <= set(value)
    return value


def test_full_id_matches_the_contract_pattern() -> None:
    assert re.fullmatch(ID_PATTERN, full_id())
    assert not re.fullmatch(ID_PATTERN, full_id() + "a")


@pytest.mark.parametrize("balance", [0, MAX_AMOUNT], ids=["zero", "max"])
async def test_boundary_accounts_are_created(quiet_api: Api, balance: int) -> None:
    account_id = full_id()
    created = await quiet_api.http.post(
        "/accounts", json={"account_id": account_id, "balance": balance}
    )
    assert created.status_code == 201, created.text
    assert created.json() == {"account_id": account_id, "balance": balance}

    fetched = await quiet_api.http.get(f"/accounts/{account_id}")
    assert fetched.status_code == 200, fetched.text
    assert fetched.json() == {"account_id": account_id, "balance": balance}


@pytest.mark.parametrize("amount", [1, MAX_AMOUNT], ids=["one", "max"])
async def test_boundary_naive_fee_is_charged(quiet_api: Api, amount: int) -> None:
    account_id, order_id = full_id(), full_id()
    await quiet_api.ledger.create_account(account_id, MAX_AMOUNT)

    response = await quiet_api.http.post(
        f"/naive/orders/{order_id}/fee", json={"account_id": account_id, "amount": amount}
    )

    assert response.status_code == 200, response.text
    assert response.json() == {
        "order_id": order_id,
        "account_id": account_id,
        "amount": amount,
        "balance": MAX_AMOUNT - amount,
    }
    assert await quiet_api.ledger.charges_for(order_id) == 1


@pytest.mark.parametrize("amount", [1, MAX_AMOUNT], ids=["one", "max"])
async def test_boundary_fee_is_charged_once(working_api: Api, amount: int) -> None:
    account_id, order_id = full_id(), full_id()
    await working_api.ledger.create_account(account_id, MAX_AMOUNT)

    posted = await working_api.http.post(
        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": amount}
    )
    fetched = await working_api.http.get(f"/orders/{order_id}/fee")

    assert posted.status_code == 200, posted.text
    body = posted.json()
    assert body["order_id"] == order_id and body["account_id"] == account_id
    assert body["amount"] == amount and body["balance_after"] == MAX_AMOUNT - amount
    assert body["status"] == "charged" and body["workflow_id"] == f"FEE-WF-{order_id}"
    assert fetched.status_code == 200 and fetched.json() == body
    assert await working_api.ledger.charges_for(order_id) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("POST", "/nope"),
        ("GET", "/orders/x"),
        ("GET", "/accounts/x/extra"),
        ("POST", "/orders/x/fee/extra"),
        ("GET", "/naive/orders/x"),
    ],
)
async def test_unknown_route_is_a_not_found_problem(quiet_api: Api, method: str, path: str) -> None:
    before = await snapshot(quiet_api.ledger)
    response = await quiet_api.http.request(method, path, json={})
    assert_problem(response, 404, "not_found")
    assert await snapshot(quiet_api.ledger) == before


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/accounts", {"GET", "POST"}),
        ("PUT", "/batches", {"GET", "POST"}),
        ("POST", "/orders", {"GET"}),
        ("POST", "/orders/x/history", {"GET"}),
        ("DELETE", "/scripts/x/runs", {"GET", "POST"}),
        ("PUT", "/accounts/x", {"GET"}),
        ("DELETE", "/accounts/x", {"GET"}),
        ("GET", "/naive/orders/x/fee", {"POST"}),
        ("PUT", "/orders/x/fee", {"GET", "POST"}),
        ("PATCH", "/orders/x/fee", {"GET", "POST"}),
        ("DELETE", "/orders/x/fee", {"GET", "POST"}),
        ("POST", "/healthz", {"GET"}),
    ],
)
async def test_wrong_method_is_a_method_not_allowed_problem(
    quiet_api: Api, method: str, path: str, allowed: set[str]
) -> None:
    """RFC 9110: a 405 names, in ``Allow``, every method the resource does serve."""
    before = await snapshot(quiet_api.ledger)
    response = await quiet_api.http.request(method, path, json={"account_id": "x", "amount": 1})
    assert_problem(response, 405, "method_not_allowed")
    assert {part.strip() for part in response.headers["allow"].split(",")} == allowed
    assert await snapshot(quiet_api.ledger) == before


async def test_existing_account_is_a_conflict_and_keeps_its_balance(quiet_api: Api) -> None:
    account_id = unique("acc")
    first = await quiet_api.http.post("/accounts", json={"account_id": account_id, "balance": 5})
    assert first.status_code == 201
    again = await quiet_api.http.post("/accounts", json={"account_id": account_id, "balance": 9})
    assert_problem(again, 409, "account_exists")
    assert (await quiet_api.ledger.get_account(account_id)).balance == 5


async def test_unknown_account_is_a_not_found_problem(quiet_api: Api) -> None:
    response = await quiet_api.http.get(f"/accounts/{unique('missing')}")
    assert_problem(response, 404, "account_not_found")


# Arguments a script can't be given, as raw JSON text (a lone surrogate can only be sent so).
BAD_ARGS: list[tuple[str, str]] = [
    ("nul", json.dumps("a\x00b")),
    ("lone-surrogate", '"\\ud800"'),
    ("4097-chars", json.dumps("x" * 4097)),
    ("not-a-string", "7"),
]


@pytest.mark.parametrize(("arg_case", "arg"), BAD_ARGS, ids=[case for case, _ in BAD_ARGS])
@pytest.mark.parametrize("route", ["run", "batch"])
async def test_a_bad_argument_is_refused_by_a_run_and_by_a_batch_alike(
    quiet_api: Api, client: Client, route: str, arg_case: str, arg: str
) -> None:
    """One rule for both (a batch once took a NUL byte that a single run refused)."""
    order_id, batch_id = unique("order"), unique("batch")
    if route == "run":
        path = "/scripts/echo-args/runs"
        raw = f'{{"order_id": "{order_id}", "args": ["ok", {arg}]}}'
        workflow_id = f"SCRIPT-WF-echo-args/{order_id}"
    else:
        path = "/batches"
        raw = (
            f'{{"batch_id": "{batch_id}", "kind": "script", "script": "echo-args", '
            f'"items": [{{"order_id": "{order_id}", "args": ["ok", {arg}]}}]}}'
        )
        workflow_id = f"BATCH-WF-{batch_id}"
    before = await snapshot(quiet_api.ledger)

    response = await quiet_api.http.post(
        path, content=raw.encode(), headers={"content-type": "application/json"}
    )

    body = assert_problem(response, 422, "validation_error")
    assert "args" in body["detail"], body
    assert await snapshot(quiet_api.ledger) == before
    assert (await quiet_api.http.get(f"/batches/{batch_id}")).status_code == 404
    assert not await workflow_exists(client, workflow_id)


@pytest.mark.parametrize("route", ["run", "batch"])
async def test_too_many_argument_characters_are_refused_alike(
    quiet_api: Api, client: Client, route: str
) -> None:
    order_id, batch_id = unique("order"), unique("batch")
    args = ["x" * 4096] * 17  # each allowed, more than 64 KiB together
    item = {"order_id": order_id, "args": args}
    if route == "run":
        response = await quiet_api.http.post("/scripts/echo-args/runs", json=item)
    else:
        body = {"batch_id": batch_id, "kind": "script", "script": "echo-args", "items": [item]}
        response = await quiet_api.http.post("/batches", json=body)
    assert_problem(response, 422, "validation_error")
    assert (await quiet_api.http.get(f"/batches/{batch_id}")).status_code == 404


# A JSON body is read as JSON without a content type, or with one that says otherwise.
NOT_JSON_CONTENT_TYPES = [None, "text/plain", "text/plain; charset=utf-8", "application/xml"]


@pytest.mark.parametrize("content_type", NOT_JSON_CONTENT_TYPES)
async def test_a_json_body_is_read_as_json_whatever_its_content_type(
    quiet_api: Api, content_type: str | None
) -> None:
    account_id = unique("acc")
    headers = {} if content_type is None else {"content-type": content_type}
    raw = json.dumps({"account_id": account_id, "balance": 42}).encode()

    response = await quiet_api.http.post("/accounts", content=raw, headers=headers)

    assert response.status_code == 201, response.text
    assert response.json() == {"account_id": account_id, "balance": 42}
    assert (await quiet_api.ledger.get_account(account_id)).balance == 42


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("content_type", [None, "text/plain"])
async def test_a_fee_without_a_json_content_type_is_charged_once(
    working_api: Api, content_type: str | None
) -> None:
    account_id, order_id = unique("acc"), unique("order")
    await working_api.ledger.create_account(account_id, 100)
    headers = {} if content_type is None else {"content-type": content_type}
    raw = json.dumps({"account_id": account_id, "amount": 30}).encode()

    first = await working_api.http.post(f"/orders/{order_id}/fee", content=raw, headers=headers)
    again = await working_api.http.post(f"/orders/{order_id}/fee", content=raw, headers=headers)

    assert first.status_code == again.status_code == 200, first.text
    assert first.content == again.content
    assert first.json()["balance_after"] == 70
    assert await working_api.ledger.charges_for(order_id) == 1


async def test_a_csv_content_type_is_not_read_as_json_by_post_batches(
    quiet_api: Api, client: Client
) -> None:
    """``text/csv`` is the CSV form of ``POST /batches``: its body is never taken for JSON."""
    batch_id = unique("batch")
    body = {
        "batch_id": batch_id,
        "kind": "fee",
        "items": [{"order_id": unique("order"), "account_id": unique("acc"), "amount": 1}],
    }
    response = await quiet_api.http.post(
        "/batches", content=json.dumps(body).encode(), headers={"content-type": "text/csv"}
    )
    assert 400 <= response.status_code < 500, response.text
    assert (await quiet_api.http.get(f"/batches/{batch_id}")).status_code == 404
    assert not await workflow_exists(client, f"BATCH-WF-{batch_id}")
