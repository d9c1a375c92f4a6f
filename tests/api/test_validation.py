"""Bad input on every route: a 4xx problem document, and nothing changed anywhere.

The contract: identifiers are 1 to 128 characters of ``A-Z a-z 0-9 . _ : -``; ``amount``
is an integer from 1 to 10^15 and ``balance`` from 0 to 10^15; a float, a string, a bool
or a number outside those bounds is a ``422 validation_error``; nothing is changed by a
request that gets a 4xx; every error is ``application/problem+json`` with a ``code``.
"""

from __future__ import annotations

import json
import re
import string
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from superscript.api.schemas import ID_PATTERN, MAX_AMOUNT
from superscript.db.metadata import metadata
from superscript.ledger import Ledger, LedgerError, schema
from superscript.settings import Settings
from tests.conftest import Api, serve_app, unique

PROBLEM = "application/problem+json"
OPENING_BALANCE = 1_000

# Placeholders filled in per test: an existing account, a fresh order, a fresh account.
ACCOUNT = "<account>"
ORDER = "<order>"
NEW = "<new>"

ALLOWED = string.ascii_uppercase + string.ascii_lowercase + string.digits + "._:-"
MISSING = object()  # no body at all


@dataclass(frozen=True)
class Bad:
    """One refused request. ``path`` and ``body`` may hold the placeholders above."""

    method: str
    path: str
    body: Any = MISSING
    raw: bytes | None = None  # sent as is instead of ``body``
    content_type: str = "application/json"
    status: int = 422
    code: str = "validation_error"
    marks: tuple[Any, ...] = field(default=())


def fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every placeholder string replaced, at any depth."""
    if isinstance(value, str):
        for placeholder, real in names.items():
            value = value.replace(placeholder, real)
        return value
    if isinstance(value, dict):
        return {fill(key, names): fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    return value


# Values that are not money: floats, numeric strings, bools, null, containers.
NOT_INTEGERS: list[tuple[str, Any]] = [
    ("float-1.0", 1.0),
    ("float-1.5", 1.5),
    ("numeric-string", "100"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("list", [100]),
    ("object", {"value": 100}),
]
# Integers out of bounds for both fields; 0 and -1 are added per field below.
HUGE_INTEGERS: list[tuple[str, Any]] = [
    ("max-plus-one", MAX_AMOUNT + 1),
    ("2^63", 2**63),
    ("2^64", 2**64),
    ("10^30", 10**30),
    ("minus-2^63-minus-one", -(2**63) - 1),
]
# Identifiers outside the contract: type, characters and length.
BAD_IDS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("space", "a b"),
    ("slash", "a/b"),
    ("percent", "a%b"),
    ("unicode", "caf\u00e9"),
    ("unicode-digit", "\u0661\u0662"),
    ("newline-suffix", "abc\n"),
    ("nul", "a\x00b"),
    ("129-chars", "a" * 129),
    ("int", 123),
    ("bool", True),
    ("null", None),
    ("list", ["a"]),
]
# Identifiers in a path: (case id, percent-encoded segment, status, code).
BAD_PATH_IDS: list[tuple[str, str, int, str]] = [
    ("space", "a%20b", 422, "validation_error"),
    ("percent", "a%25b", 422, "validation_error"),
    ("unicode", quote("caf\u00e9"), 422, "validation_error"),
    ("newline-suffix", "abc%0A", 422, "validation_error"),
    ("129-chars", "a" * 129, 422, "validation_error"),
    ("plus-is-not-space", "a+b", 422, "validation_error"),
    # An encoded '/' is decoded before routing: the path then matches no route.
    ("encoded-slash", "a%2Fb", 404, "not_found"),
]
# Raw bodies that are not a JSON object of the right shape.
RAW_BODIES: list[tuple[str, bytes, str]] = [
    ("truncated-json", b'{"account_id": "<account>", ', "application/json"),
    ("not-json", b"not json", "application/json"),
    ("single-quotes", b"{'account_id': '<account>'}", "application/json"),
    ("invalid-utf8", b"\xff\xfe\xfd", "application/json"),
    ("empty", b"", "application/json"),
    ("empty-no-content-type", b"", ""),
    ("json-null", b"null", "application/json"),
    ("json-list", b'[{"account_id": "<account>"}]', "application/json"),
    ("json-string", b'"<account>"', "application/json"),
    ("json-number", b"1", "application/json"),
    # Read as JSON whatever the content type says (the contract): still not a good body.
    ("text-plain-bad-json", b'{"account_id": "<account>", "VALUE": 1.5}', "text/plain"),
    ("no-content-type-not-json", b"account_id=<account>&VALUE=1", ""),
    ("form-content-type", b"account_id=<account>&VALUE=1", "application/x-www-form-urlencoded"),
    ("nested-too-deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
]
# Numbers Python's JSON reader turns into floats, or refuses.
RAW_NUMBERS: list[tuple[str, bytes]] = [
    ("exponent", b"1e2"),
    ("decimal-zero", b"100.0"),
    ("nan", b"NaN"),
    ("infinity", b"Infinity"),
    ("5000-digits", b"9" * 5000),
]

FEE_ROUTES = ["/naive/orders/<order>/fee", "/orders/<order>/fee"]


def fee_cases(route: str) -> list[tuple[str, Bad]]:
    name = "naive-fee" if route.startswith("/naive") else "fee"
    good = {"account_id": ACCOUNT, "amount": 100}
    cases: list[tuple[str, Bad]] = []
    for case, amount in [*NOT_INTEGERS, ("zero", 0), ("negative", -1), *HUGE_INTEGERS]:
        cases.append((f"{name}-amount-{case}", Bad("POST", route, {**good, "amount": amount})))
    for case, account_id in BAD_IDS:
        body = {**good, "account_id": account_id}
        cases.append((f"{name}-account_id-{case}", Bad("POST", route, body)))
    for case, number in RAW_NUMBERS:
        raw = b'{"account_id": "<account>", "amount": ' + number + b"}"
        cases.append((f"{name}-amount-raw-{case}", Bad("POST", route, raw=raw)))
    for case, raw, content_type in RAW_BODIES:
        raw = raw.replace(b"VALUE", b"amount")
        cases.append(
            (f"{name}-body-{case}", Bad("POST", route, raw=raw, content_type=content_type))
        )
    cases += [
        (f"{name}-missing-amount", Bad("POST", route, {"account_id": ACCOUNT})),
        (f"{name}-missing-account_id", Bad("POST", route, {"amount": 100})),
        (f"{name}-empty-object", Bad("POST", route, {})),
        (f"{name}-no-body", Bad("POST", route)),
        (f"{name}-extra-field", Bad("POST", route, {**good, "currency": "EUR"})),
        (f"{name}-extra-order_id", Bad("POST", route, {**good, "order_id": ORDER})),
        (f"{name}-amount-as-key-case", Bad("POST", route, {"account_id": ACCOUNT, "Amount": 1})),
        (f"{name}-list-of-good-body", Bad("POST", route, [good])),
    ]
    for case, segment, status, code in BAD_PATH_IDS:
        path = route.replace(ORDER, segment)
        cases.append((f"{name}-path-{case}", Bad("POST", path, good, status=status, code=code)))
    path = route.replace(ORDER, "")
    cases.append((f"{name}-path-empty", Bad("POST", path, good, status=404, code="not_found")))
    return cases


def account_cases() -> list[tuple[str, Bad]]:
    good = {"account_id": NEW, "balance": 100}
    cases: list[tuple[str, Bad]] = []
    for case, balance in [*NOT_INTEGERS, ("negative", -1), *HUGE_INTEGERS]:
        body = {**good, "balance": balance}
        cases.append((f"create-balance-{case}", Bad("POST", "/accounts", body)))
    for case, account_id in BAD_IDS:
        body = {**good, "account_id": account_id}
        cases.append((f"create-account_id-{case}", Bad("POST", "/accounts", body)))
    for case, number in RAW_NUMBERS:
        raw = b'{"account_id": "<new>", "balance": ' + number + b"}"
        cases.append((f"create-balance-raw-{case}", Bad("POST", "/accounts", raw=raw)))
    for case, raw, content_type in RAW_BODIES:
        raw = raw.replace(b"<account>", b"<new>").replace(b"VALUE", b"balance")
        bad = Bad("POST", "/accounts", raw=raw, content_type=content_type)
        cases.append((f"create-body-{case}", bad))
    cases += [
        ("create-missing-balance", Bad("POST", "/accounts", {"account_id": NEW})),
        ("create-missing-account_id", Bad("POST", "/accounts", {"balance": 100})),
        ("create-empty-object", Bad("POST", "/accounts", {})),
        ("create-no-body", Bad("POST", "/accounts")),
        ("create-extra-field", Bad("POST", "/accounts", {**good, "currency": "EUR"})),
        ("create-list-of-good-body", Bad("POST", "/accounts", [good])),
    ]
    for case, segment, status, code in BAD_PATH_IDS:
        bad = Bad("GET", f"/accounts/{segment}", status=status, code=code)
        cases.append((f"get-account-path-{case}", bad))
    # '/accounts/' with an empty id: no route, and no redirect to one either.
    cases.append(("get-account-path-empty", Bad("GET", "/accounts/", status=404, code="not_found")))
    return cases


def get_fee_cases() -> list[tuple[str, Bad]]:
    cases = [
        (f"get-fee-path-{case}", Bad("GET", f"/orders/{segment}/fee", status=status, code=code))
        for case, segment, status, code in BAD_PATH_IDS
    ]
    cases.append(("get-fee-path-empty", Bad("GET", "/orders//fee", status=404, code="not_found")))
    return cases


BAD_CASES = [
    *account_cases(),
    *[case for route in FEE_ROUTES for case in fee_cases(route)],
    *get_fee_cases(),
]


def quiet_settings(settings: Settings) -> Settings:
    """No naive sleep, and a short wait so a request that wrongly passes fails fast."""
    return settings.model_copy(update={"naive_delay": (0.0, 0.0), "result_wait_seconds": 2.0})


def shared_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """For a sync fixture parametrized by database: the async pg_url can't be set up later."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('shared') / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@asynccontextmanager
async def shared_app(url: str, client: Client, **update: Any) -> AsyncIterator[Api]:
    """One ledger and app for a whole module and database, without a worker.

    The tables here are hundreds of requests that must not reach Temporal at all; opening
    a ledger and an app for each would be most of their time. Every test uses fresh IDs,
    and the tests of a module run one after another, so row counts taken before and after
    a request are the request's own doing.
    """
    settings = Settings(database_url=url, task_queue=unique("idle"))
    ledger = await Ledger.open(url)
    try:
        async with serve_app(
            quiet_settings(settings).model_copy(update=update), ledger, client
        ) as app:
            yield app
    finally:
        await ledger.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def quiet_db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    return shared_db_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
async def quiet_api(quiet_db_url: str, temporal_env: WorkflowEnvironment) -> AsyncIterator[Api]:
    """The app without a worker: no refused request may reach Temporal anyway."""
    async with shared_app(quiet_db_url, temporal_env.client) as served:
        yield served


@pytest.fixture
async def working_api(
    settings: Settings, ledger: Ledger, client: Client, worker: Worker
) -> AsyncIterator[Api]:
    """Per test, with a worker on its own queue, for the requests that must succeed."""
    async with serve_app(quiet_settings(settings), ledger, client) as served:
        yield served


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, int]
    balances: int


async def snapshot(ledger: Ledger) -> Snapshot:
    """The row count of every ledger table and the balance total: any change shows here."""
    async with ledger.engine.connect() as conn:
        rows = {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }
        balances = await conn.scalar(select(func.coalesce(func.sum(schema.accounts.c.balance), 0)))
    return Snapshot(rows, int(balances or 0))


async def account_exists(ledger: Ledger, account_id: str) -> bool:
    try:
        await ledger.get_account(account_id)
    except LedgerError as exc:
        assert exc.code == "account_not_found"
        return False
    return True


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND, exc
        return False
    return True


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail", "code"):
        assert member in body, body
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["status"] == response.status_code
    assert body["code"] == code, body
    return body


async def send(http: httpx.AsyncClient, bad: Bad, names: dict[str, str]) -> httpx.Response:
    path = fill(bad.path, names)
    headers = {"content-type": bad.content_type} if bad.content_type else {}
    if bad.raw is not None:
        content = fill(bad.raw.decode("latin-1"), names).encode("latin-1")
        return await http.request(bad.method, path, content=content, headers=headers)
    if bad.body is MISSING:
        return await http.request(bad.method, path)
    content = json.dumps(fill(bad.body, names)).encode()
    return await http.request(bad.method, path, content=content, headers=headers)


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
        ("DELETE", "/accounts", {"POST"}),
        ("GET", "/accounts", {"POST"}),
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
