"""Schemathesis against the real app: every route, generated requests, checked by the spec.

The app runs in process with a real SQLite ledger, the session's Temporal dev server and a
worker, so the fee, script and batch routes really decide and run things. Schemathesis
generates requests for every operation of the app's OpenAPI document, positive (what the
spec allows) and negative (what it does not), and every response passes every check
Schemathesis has (``--checks all``); among them, every response must:

* not be a server error (5xx, except the 503s the spec declares),
* have a status code the spec declares for the operation,
* have a content type the spec declares for that status,
* match the schema the spec declares for that status and content type (and its headers),
* refuse a request the spec does not allow (negative data), and accept one it allows
  (positive data) unless the ledger's state refuses it: see ``STATE_REFUSALS``.

Hypothesis draws the cases in a worker thread; each request goes through ``httpx`` to the
app on the test's event loop, the one the ledger, the Temporal client and the worker live
on. Part of the positive cases name accounts, orders, runs and batches that exist (made
before the run), so the success bodies are checked as well as the 404s. Script names are
drawn from the registry; the bundled ``slow-payment`` (which sleeps until its 2 s timeout)
is never run by a generated request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import is_check_class, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.testing import WorkflowEnvironment

from superscript.api.app import create_app
from superscript.api.limits import body_limit
from superscript.ledger import Ledger
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.conftest import Api, serve_app, unique

# Parameterless operations have one possible request; the others get this many cases each,
# which makes more than 1,000 in all.
MAX_EXAMPLES = 95
MIN_TOTAL_CASES = 1_000
REFUSAL_EXAMPLES = 3
SMALL_AMOUNT = 1_000
CASE_TIMEOUT_SECONDS = 60
load_all_checks()
# Every check Schemathesis has (``--checks all``): the checks of responses, and those of a
# run's phases (missing headers, unsupported methods, stateful ones), which look at what
# they apply to and pass the rest.
CHECKS: list[CheckFunction] = [
    check for check in REGISTERED_CHECKS.get_all() if not is_check_class(check)
]
# Refusals decided by the state of the ledger, not by the request: the same order placed
# before with another account or amount, a batch ID used before for other items, an
# account that can't pay. A schema can't say which keys were used or what a balance is, so
# for these (and only these) answers to positive cases, positive_data_acceptance (which
# expects 2xx, 401, 403, 404, 409 or 429) is not run; every other check still is.
STATE_REFUSALS = frozenset({(402, "insufficient_funds"), (422, "idempotency_key_reused")})
SLOW_SCRIPT = "slow-payment"
UNKNOWN_SCRIPTS = ("no-such-script", "collect_payment")

# The document the app serves (the fixture checks it is the one served): building the app
# opens nothing, that happens in its lifespan.
SPEC: dict[str, Any] = create_app(Settings(api_token=None)).openapi()
SCHEMA = schemathesis.openapi.from_dict(SPEC)
Operation = APIOperation[Any, Any, Any, Any]
AnyCase = Case[Any]
OPERATIONS: dict[str, Operation] = {
    f"{method.upper()} {path}": SCHEMA[path][method.upper()]
    for path, methods in SPEC["paths"].items()
    for method in methods
}


@dataclass
class Known:
    """Things that exist before the run, for cases to name besides random identifiers."""

    accounts: list[str]
    """The first has more money than the cases can spend."""
    fee_orders: list[str]
    scripts: list[str]
    safe_scripts: list[str]
    script_runs: list[tuple[str, str]]
    batches: list[str]


@dataclass
class Served:
    api: Api
    known: Known
    cases: dict[str, int] = field(default_factory=dict)


async def _post(api: Api, path: str, body: dict[str, Any], *expected: int) -> httpx.Response:
    response = await api.http.post(path, json=body)
    assert response.status_code in expected, (path, response.status_code, response.text)
    return response


async def _seed(api: Api) -> Known:
    """Accounts, decided orders, script runs and batches for the cases to refer to."""
    rich, poor, empty = unique("acc"), unique("acc"), unique("acc")
    for account_id, balance in ((rich, 10**15), (poor, 50), (empty, 0)):
        await _post(api, "/accounts", {"account_id": account_id, "balance": balance}, 201)
    charged, declined, ghost = unique("order"), unique("order"), unique("order")
    await _post(api, f"/orders/{charged}/fee", {"account_id": rich, "amount": 100}, 200)
    await _post(api, f"/orders/{declined}/fee", {"account_id": poor, "amount": 80}, 402)
    await _post(api, f"/orders/{ghost}/fee", {"account_id": unique("ghost"), "amount": 1}, 404)

    listed = await api.http.get("/scripts")
    assert listed.status_code == 200
    scripts = sorted(script["name"] for script in listed.json())
    assert SLOW_SCRIPT in scripts and "echo-args" in scripts and "fail-payment" in scripts
    runs = [("echo-args", unique("run")), ("fail-payment", unique("run"))]
    slow_run = (SLOW_SCRIPT, unique("run"))
    # The slow run is started once, here, so that its pending and its timed-out (exit_code
    # null) answers are checked too; the cases only ever read it.
    await asyncio.gather(
        _post(api, f"/scripts/{slow_run[0]}/runs", {"order_id": slow_run[1]}, 202, 200),
        *(
            _post(api, f"/scripts/{name}/runs", {"order_id": order_id, "args": ["x"]}, 200)
            for name, order_id in runs
        ),
    )

    fee_batch, script_batch = unique("batch"), unique("batch")
    await _post(
        api,
        "/batches",
        {
            "batch_id": fee_batch,
            "kind": "fee",
            "items": [
                {"order_id": unique("order"), "account_id": account_id, "amount": 10}
                for account_id in (rich, poor, empty, unique("ghost"))
            ],
        },
        202,
    )
    await _post(
        api,
        "/batches",
        {
            "batch_id": script_batch,
            "kind": "script",
            "script": "echo-args",
            "items": [{"order_id": unique("order"), "args": ["a", "b"]} for _ in range(3)],
        },
        202,
    )
    return Known(
        accounts=[rich, poor, empty],
        fee_orders=[charged, declined, ghost],
        scripts=scripts,
        safe_scripts=[name for name in scripts if name != SLOW_SCRIPT],
        script_runs=[*runs, slow_run],
        batches=[fee_batch, script_batch],
    )


@pytest.fixture(scope="module")
async def served(
    temporal_env: WorkflowEnvironment, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Served]:
    """One app, ledger and worker for every operation, so cases see each other's effects."""
    data_dir = tmp_path_factory.mktemp("schemathesis")
    app_settings = Settings(
        data_dir=data_dir,
        database_url=f"sqlite:///{data_dir / 'ledger.db'}",
        task_queue=unique("tq"),
        api_token=None,
    ).model_copy(update={"naive_delay": (0.0, 0.0), "result_wait_seconds": 2.0})
    ledger = await Ledger.open(app_settings.database_url)
    try:
        async with (
            build_worker(temporal_env.client, ledger, app_settings),
            serve_app(app_settings, ledger, temporal_env.client) as api,
        ):
            served_spec = await api.http.get("/openapi.json")
            assert served_spec.status_code == 200
            assert served_spec.json() == SPEC
            result = Served(api=api, known=await _seed(api))
            yield result
            total = sum(result.cases.values())
            if set(result.cases) == set(OPERATIONS):
                assert total >= MIN_TOTAL_CASES, result.cases
    finally:
        await ledger.close()


def _has_inputs(operation: Operation) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers or operation.body)


def _strategy(operation: Operation) -> st.SearchStrategy[AnyCase]:
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if not _has_inputs(operation):
        return positive
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


def _is_positive(case: AnyCase) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _whole_numbers(value: Any) -> Any:
    """``value`` with every float that has no fraction written as an integer, at any depth.

    JSON Schema counts ``69.0`` as an integer, so positive cases hold such amounts; the
    contract refuses a float for money (the schema's description says so, and
    test_api_validation checks the refusal), so positive cases send them as ``69``.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def _refer_to_known(case: AnyCase, known: Known, data: st.DataObject) -> None:
    """Point part of the positive cases at things that exist; keep scripts off the slow one."""
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    if _is_positive(case) and case.body is not None:
        case.body = _whole_numbers(case.body)
    body = case.body if isinstance(case.body, dict) else None
    if path in ("/naive/scripts/{name}/runs", "/scripts/{name}/runs") and _is_positive(case):
        params["name"] = data.draw(st.sampled_from([*known.safe_scripts, *UNKNOWN_SCRIPTS]))
    if not _is_positive(case) or not data.draw(st.booleans(), label="refer to known"):
        return

    def pick(values: list[str]) -> str:
        return data.draw(st.sampled_from(values))

    if path == "/accounts/{account_id}":
        params["account_id"] = pick(known.accounts)
    elif path == "/accounts" and body is not None:
        body["account_id"] = pick(known.accounts)
    elif path in ("/orders/{order_id}/fee", "/naive/orders/{order_id}/fee"):
        if body is not None:
            body["account_id"] = pick(known.accounts)
            # An amount the rich account can pay, or nearly every fee would be refused.
            if data.draw(st.booleans()):
                body["account_id"] = known.accounts[0]
                body["amount"] = data.draw(st.integers(1, SMALL_AMOUNT))
        if case.method.upper() == "GET" or data.draw(st.booleans()):
            params["order_id"] = pick(known.fee_orders)
    elif path == "/scripts/{name}/runs/{order_id}":
        params["name"], params["order_id"] = data.draw(st.sampled_from(known.script_runs))
    elif path == "/batches" and body is not None:
        if body.get("kind") == "script":
            body["script"] = pick(known.safe_scripts)
        items = body.get("items")
        if body.get("kind") == "fee" and isinstance(items, list):
            for item in items:
                if isinstance(item, dict):
                    item["account_id"] = pick(known.accounts)
                    item["amount"] = data.draw(st.integers(1, SMALL_AMOUNT))
    elif path.startswith("/batches/{batch_id}"):
        params["batch_id"] = pick(known.batches)


def _runs_slow_script(case: AnyCase) -> bool:
    """Would this request run the slow script (the only way to wait on it is to read it)?"""
    if case.method.upper() != "POST":
        return False
    name = (case.path_parameters or {}).get("name")
    script = case.body.get("script") if isinstance(case.body, dict) else None
    return SLOW_SCRIPT in (name, script)


async def _send(http: httpx.AsyncClient, case: AnyCase) -> httpx.Response:
    """The request Schemathesis would send for ``case``, sent to the app in process."""
    sent = case.as_transport_kwargs(base_url=str(http.base_url).rstrip("/"))
    unsupported = set(sent) - {"method", "url", "headers", "params", "cookies", "json", "data"}
    assert not unsupported, f"not translated to httpx: {unsupported}"
    assert not sent.get("cookies"), "the spec declares no cookies"
    content: Any = None
    if "json" in sent:
        content = httpx.Request("POST", "/", json=sent["json"]).content
    elif "data" in sent:
        content = sent["data"]
        assert isinstance(content, bytes | str), type(content)
    return await http.request(
        sent["method"],
        sent["url"],
        headers=sent.get("headers"),
        params=sent.get("params") or None,
        content=content,
    )


def _problem_code(response: httpx.Response) -> str | None:
    if not response.headers.get("content-type", "").startswith("application/problem+json"):
        return None
    code = response.json().get("code")
    return code if isinstance(code, str) else None


def _state_checks_excluded(response: httpx.Response) -> list[CheckFunction]:
    """The checks not to run on this answer: see ``STATE_REFUSALS``."""
    if (response.status_code, _problem_code(response)) in STATE_REFUSALS:
        return [positive_data_acceptance]
    return []


def _case_count(operation: Operation) -> int:
    return MAX_EXAMPLES if _has_inputs(operation) else 1


Prepare = Callable[[AnyCase, st.DataObject], None]
Send = Callable[[AnyCase], Coroutine[Any, Any, httpx.Response]]


async def _run_cases(
    strategy: st.SearchStrategy[AnyCase],
    max_examples: int,
    prepare: Prepare,
    send: Send,
    checks: list[CheckFunction],
    excluded: Callable[[httpx.Response], list[CheckFunction]] = _state_checks_excluded,
) -> list[tuple[AnyCase, int]]:
    """Draw cases in a worker thread, send each on this loop, check each response.

    Returns every case sent with its status code.
    """
    loop = asyncio.get_running_loop()
    sent: list[tuple[AnyCase, int]] = []

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        prepare(case, data)
        if _runs_slow_script(case):
            reject()
        future = asyncio.run_coroutine_threadsafe(send(case), loop)
        response = future.result(CASE_TIMEOUT_SECONDS)
        sent.append((case, response.status_code))
        note(f"{response.status_code} {response.headers.get('content-type')}: {response.text}")
        case.validate_response(response, checks=checks, excluded_checks=excluded(response))

    # Hypothesis drives from a thread; the app, ledger and worker stay on this loop.
    await asyncio.to_thread(check)
    return sent


@pytest.mark.parametrize("label", list(OPERATIONS))
async def test_operation_conforms_to_the_spec(served: Served, label: str) -> None:
    operation = OPERATIONS[label]

    def prepare(case: AnyCase, data: st.DataObject) -> None:
        _refer_to_known(case, served.known, data)

    sent = await _run_cases(
        _strategy(operation),
        _case_count(operation),
        prepare,
        lambda case: _send(served.api.http, case),
        CHECKS,
    )

    served.cases[label] = len(sent)
    assert len(sent) >= _case_count(operation)
    # Not only refusals: every operation answered some cases with success.
    assert any(200 <= status < 300 for _case, status in sent), sorted(
        {status for _case, status in sent}
    )


POST_OPERATIONS = [label for label, operation in OPERATIONS.items() if operation.method == "post"]


@pytest.mark.parametrize("label", POST_OPERATIONS)
async def test_refusals_before_the_route_are_declared(
    served: Served, temporal_env: WorkflowEnvironment, label: str
) -> None:
    """401 (a token is configured, none sent) and 413 (body too large) are in the spec too."""
    operation = OPERATIONS[label]
    api = served.api
    guarded = api.settings.model_copy(update={"api_token": SecretStr("s3cret-token")})
    async with serve_app(guarded, api.ledger, temporal_env.client) as locked:

        async def too_large(case: AnyCase) -> httpx.Response:
            # Declared larger than the route's limit: refused before a byte is read.
            limit = body_limit("POST", case.formatted_path)
            request = api.http.build_request(
                "POST",
                case.formatted_path,
                content=b"{}",
                headers={"content-type": "application/json", "content-length": str(limit + 1)},
            )
            return await api.http.send(request)

        unauthorized = await _run_cases(
            operation.as_strategy(GenerationMode.POSITIVE),
            REFUSAL_EXAMPLES,
            lambda case, data: None,
            lambda case: _send(locked.http, case),
            CHECKS,
        )
        oversized = await _run_cases(
            operation.as_strategy(GenerationMode.POSITIVE),
            REFUSAL_EXAMPLES,
            lambda case, data: None,
            too_large,
            CHECKS,
            # The body sent is not the case's (valid) one but one declared too large: its
            # 413 is right, and no acceptance of the case's data is to be expected.
            lambda response: [positive_data_acceptance],
        )

    assert {status for _case, status in unauthorized} == {401}
    assert {status for _case, status in oversized} == {413}
    assert len(unauthorized) == len(oversized) == REFUSAL_EXAMPLES


def test_enough_cases_for_every_operation() -> None:
    """The spec lists every route of the app, and more than 1,000 cases are generated."""
    assert len(OPERATIONS) == 14
    assert sum(_case_count(operation) for operation in OPERATIONS.values()) >= MIN_TOTAL_CASES
