"""Script run requests the API refuses: bad names, bad bodies, oversized bodies, unknown runs.
Nothing runs for any of them."""

from __future__ import annotations

from typing import Any

import httpx

from superscript.scripts.records import ScriptRuns
from tests.api.checks import PROBLEM, assert_problem
from tests.conftest import Api, unique
from tests.scripts.runs import payment_lines, run_path


async def test_bad_script_names_are_refused_and_nothing_runs(api: Api) -> None:
    order_id = unique("order")
    raw_paths = [
        "/scripts/no-such-script/runs",
        "/scripts/not-executable/runs",
        "/scripts/../runs",
        "/scripts/%2e%2e/runs",
        "/scripts/%2E%2E%2Fcollect-payment/runs",
        "/scripts/..%2Fscripts%2Fcollect-payment/runs",
        "/scripts/%2Fbin%2Fsh/runs",
        "/scripts/collect-payment.sh%00/runs",
        "/scripts/.hidden/runs",
        "/scripts/a%20b/runs",
        "/scripts/" + "x" * 129 + "/runs",
    ]
    for prefix in ("", "/naive"):
        for raw in raw_paths:
            # httpx would normalise "..": send the raw path as written.
            url = httpx.URL("http://superscript.test").copy_with(raw_path=(prefix + raw).encode())
            response = await api.http.post(url, json={"order_id": order_id, "args": ["1"]})
            assert 400 <= response.status_code < 500, (prefix, raw, response.status_code)
            assert response.headers["content-type"].startswith(PROBLEM), raw
            assert response.json()["code"], raw

        for name in ("no-such-script", "not-executable"):
            response = await api.http.post(
                f"{prefix}{run_path(name)}", json={"order_id": order_id, "args": []}
            )
            assert_problem(response, 404, "script_not_found")
    assert payment_lines(api.settings) == []
    assert await ScriptRuns(api.ledger.engine).get("not-executable", order_id) is None


INVALID_BODIES: list[dict[str, Any]] = [
    {"order_id": "a/b", "args": []},
    {"order_id": "", "args": []},
    {"order_id": "x" * 129, "args": []},
    {"order_id": 42, "args": []},
    {"args": []},
    {"order_id": "ok", "args": "100"},
    {"order_id": "ok", "args": [100]},
    {"order_id": "ok", "args": [True]},
    {"order_id": "ok", "args": [None]},
    {"order_id": "ok", "args": [["100"]]},
    {"order_id": "ok", "args": ["a\x00b"]},
    {"order_id": "ok", "args": ["x" * 4097]},
    {"order_id": "ok", "args": ["1"] * 257},
    {"order_id": "ok", "args": ["x" * 4096] * 17},
    {"order_id": "ok", "args": [], "amount": 1},
]


async def test_invalid_bodies_are_422_and_run_nothing(api: Api) -> None:
    for payload in INVALID_BODIES:
        for prefix in ("", "/naive"):
            response = await api.http.post(f"{prefix}{run_path('collect-payment')}", json=payload)
            assert_problem(response, 422, "validation_error")
    lone_surrogate = b'{"order_id": "ok", "args": ["\\ud800"]}'
    response = await api.http.post(
        run_path("collect-payment"),
        content=lone_surrogate,
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 422, "validation_error")
    assert payment_lines(api.settings) == []
    assert await ScriptRuns(api.ledger.engine).get("collect-payment", "ok") is None


async def test_oversized_body_is_413(api: Api) -> None:
    response = await api.http.post(
        run_path("collect-payment"),
        content=b'{"order_id": "o", "args": ["' + b"x" * (2 * 1024 * 1024) + b'"]}',
        headers={"content-type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")
    assert payment_lines(api.settings) == []


async def test_unknown_run_is_404(api: Api) -> None:
    for name in ("collect-payment", "no-such-script"):
        response = await api.http.get(f"{run_path(name)}/{unique('order')}")
        body = assert_problem(response, 404, "run_not_found")
        assert body["script"] == name
