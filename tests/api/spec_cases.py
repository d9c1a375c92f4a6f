"""Schemathesis cases for the app: drawn from its OpenAPI document, pointed in part at
things that exist, sent to the app in process and checked with every check Schemathesis
has (``--checks all``). ``test_schemathesis`` runs them against every operation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, note, reject, settings
from hypothesis import strategies as st
from schemathesis import APIOperation, Case, CheckFunction, GenerationMode
from schemathesis.checks import CHECKS as REGISTERED_CHECKS
from schemathesis.checks import is_check_class, load_all_checks
from schemathesis.specs.openapi.checks import positive_data_acceptance

from superscript.api.app import create_app
from superscript.settings import Settings

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


def has_inputs(operation: Operation) -> bool:
    return bool(operation.path_parameters or operation.query or operation.headers or operation.body)


def strategy_for(operation: Operation) -> st.SearchStrategy[AnyCase]:
    positive = operation.as_strategy(GenerationMode.POSITIVE)
    if not has_inputs(operation):
        return positive
    return st.one_of(positive, operation.as_strategy(GenerationMode.NEGATIVE))


def _is_positive(case: AnyCase) -> bool:
    return case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE


def _whole_numbers(value: Any) -> Any:
    """``value`` with every float that has no fraction written as an integer, at any depth.

    JSON Schema counts ``69.0`` as an integer, so positive cases hold such amounts; the
    contract refuses a float for money (the schema's description says so, and
    tests/api/test_validation.py checks the refusal), so positive cases send them as ``69``.
    """
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {key: _whole_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(item) for item in value]
    return value


def csv_batch(case: AnyCase, known: Known, data: st.DataObject) -> None:
    """A positive CSV batch: a schema can't say that the query's kind and the header row
    agree (a random text is no batch), so both are drawn here, the rows naming known things."""
    count = data.draw(st.integers(1, 3), label="csv rows")
    order_ids = [f"csv-{data.draw(st.integers(0, 10**12))}" for _ in range(count)]
    query = {"batch_id": f"csv-batch-{data.draw(st.integers(0, 10**12))}"}
    if data.draw(st.booleans(), label="fee csv"):
        query["kind"] = "fee"
        rich = known.accounts[0]
        lines = ["order_id,account_id,amount"]
        lines += [f"{o},{rich},{data.draw(st.integers(1, SMALL_AMOUNT))}" for o in order_ids]
    else:
        query |= {"kind": "script", "script": data.draw(st.sampled_from(known.safe_scripts))}
        lines = ["order_id,arg", *(f"{o},x" for o in order_ids)]
    case.query = query
    case.body = "\n".join(lines) + "\n"


def refer_to_known(case: AnyCase, known: Known, data: st.DataObject) -> None:
    """Point part of the positive cases at things that exist; keep scripts off the slow one."""
    path = case.operation.path
    params = case.path_parameters if case.path_parameters is not None else {}
    if _is_positive(case) and case.body is not None:
        case.body = _whole_numbers(case.body)
    body = case.body if isinstance(case.body, dict) else None
    if path in ("/naive/scripts/{name}/runs", "/scripts/{name}/runs") and _is_positive(case):
        params["name"] = data.draw(st.sampled_from([*known.safe_scripts, *UNKNOWN_SCRIPTS]))
    if path == "/batches" and case.media_type == "text/csv" and _is_positive(case):
        csv_batch(case, known, data)
        return
    if not _is_positive(case) or not data.draw(st.booleans(), label="refer to known"):
        return

    def pick(values: list[str]) -> str:
        return data.draw(st.sampled_from(values))

    if path in ("/accounts/{account_id}", "/accounts/{account_id}/entries"):
        params["account_id"] = pick(known.accounts)
    elif path == "/orders/{order_id}/history":
        params["order_id"] = pick(known.fee_orders)
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


async def send_case(http: httpx.AsyncClient, case: AnyCase) -> httpx.Response:
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


def case_count(operation: Operation) -> int:
    return MAX_EXAMPLES if has_inputs(operation) else 1


Prepare = Callable[[AnyCase, st.DataObject], None]
Send = Callable[[AnyCase], Coroutine[Any, Any, httpx.Response]]


async def run_cases(
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
