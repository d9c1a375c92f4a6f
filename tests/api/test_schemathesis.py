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
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance
from temporalio.testing import WorkflowEnvironment

from superscript.api.limits import body_limit
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.api.spec_cases import (
    CHECKS,
    MIN_TOTAL_CASES,
    OPERATIONS,
    REFUSAL_EXAMPLES,
    SLOW_SCRIPT,
    SPEC,
    AnyCase,
    Known,
    case_count,
    refer_to_known,
    run_cases,
    send_case,
    strategy_for,
)
from tests.conftest import Api, open_ledger, serve_app, unique


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
    async with (
        open_ledger(app_settings.database_url) as ledger,
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


@pytest.mark.parametrize("label", list(OPERATIONS))
async def test_operation_conforms_to_the_spec(served: Served, label: str) -> None:
    operation = OPERATIONS[label]

    def prepare(case: AnyCase, data: st.DataObject) -> None:
        refer_to_known(case, served.known, data)

    sent = await run_cases(
        strategy_for(operation),
        case_count(operation),
        prepare,
        lambda case: send_case(served.api.http, case),
        CHECKS,
    )

    served.cases[label] = len(sent)
    assert len(sent) >= case_count(operation)
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

        unauthorized = await run_cases(
            operation.as_strategy(GenerationMode.POSITIVE),
            REFUSAL_EXAMPLES,
            lambda case, data: None,
            lambda case: send_case(locked.http, case),
            CHECKS,
        )
        oversized = await run_cases(
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
    assert len(OPERATIONS) == 20
    assert sum(case_count(operation) for operation in OPERATIONS.values()) >= MIN_TOTAL_CASES
