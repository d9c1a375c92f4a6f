"""Payment scripts exactly once per order: the script routes and SinglePaymentCollectionWorkflow
on the real app, dev server, databases and subprocesses: one run for any number of callers,
and what a run's outcome says. Refusals, workers and old IDs have modules of their own."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest
from temporalio.client import Client, WorkflowExecutionStatus

from superscript.scripts.records import ScriptRuns
from tests.api.checks import assert_problem
from tests.conftest import Api, at_once, unique
from tests.leftovers import wait_gone
from tests.scripts.runs import payment_lines, post_run, run_path

BODY_KEYS = {
    "order_id",
    "script",
    "status",
    "exit_code",
    "stdout",
    "stderr",
    "attempts",
    "workflow_id",
    "run_id",
    "reason",
}


# The registry ------------------------------------------------------------------------


async def test_list_scripts(api: Api) -> None:
    response = await api.http.get("/scripts")
    assert response.status_code == 200
    listed = {item["name"]: item for item in response.json()}
    assert listed["collect-payment"] == {
        "name": "collect-payment",
        "description": (
            "Collect one payment from the card on file (example: appends a line to payments.log)"
        ),
        "timeout_seconds": 30,
        "max_attempts": 1,
    }
    assert listed["flaky-payment"]["max_attempts"] == 3
    assert listed["echo-args"]["max_attempts"] == 1
    assert "not-executable" not in listed
    assert list(listed) == sorted(listed)


# Exactly once ------------------------------------------------------------------------


async def test_ten_concurrent_callers_run_the_script_once_with_one_answer(api: Api) -> None:
    order_id = unique("order")
    key = f"collect-payment/{order_id}"

    responses = await at_once(
        10, lambda _: post_run(api, "collect-payment", order_id, ["1250", "EUR"])
    )

    assert {response.status_code for response in responses} == {200}
    bodies = [response.json() for response in responses]
    assert all(body == bodies[0] for body in bodies)
    body = bodies[0]
    assert set(body) == BODY_KEYS
    assert body["order_id"] == order_id and body["script"] == "collect-payment"
    assert body["status"] == "succeeded" and body["exit_code"] == 0
    assert body["stdout"] == f"collected 1250 EUR for {order_id}\n"
    assert body["stderr"] == "" and body["reason"] is None
    assert body["attempts"] == 1
    assert body["workflow_id"] == f"SCRIPT-WF-collect-payment/{order_id}"
    assert body["run_id"]
    assert payment_lines(api.settings, key) == [f"{key} {order_id} 1250 EUR attempt=1"]

    later = await post_run(api, "collect-payment", order_id, ["1250", "EUR"])
    fetched = await api.http.get(f"{run_path('collect-payment')}/{order_id}")
    assert later.status_code == fetched.status_code == 200
    assert later.json() == fetched.json() == body
    assert len(payment_lines(api.settings, key)) == 1

    record = await ScriptRuns(api.ledger.engine).get("collect-payment", order_id)
    assert record is not None and record.args == ["1250", "EUR"]
    assert record.status == "succeeded" and record.result is not None
    assert record.result.model_dump() == body


async def test_naive_route_runs_the_script_every_time(api: Api) -> None:
    order_id = unique("order")
    key = f"collect-payment/{order_id}"
    body = {"order_id": order_id, "args": ["500"]}

    responses = await at_once(
        3, lambda _: api.http.post(f"/naive{run_path('collect-payment')}", json=body)
    )

    assert [response.status_code for response in responses] == [200, 200, 200]
    for response in responses:
        assert response.json() == {
            "order_id": order_id,
            "script": "collect-payment",
            "exit_code": 0,
            "stdout": f"collected 500 USD for {order_id}\n",
            "stderr": "",
        }
    assert len(payment_lines(api.settings, key)) == 3


async def test_same_key_with_other_args_is_refused_and_runs_nothing(api: Api) -> None:
    order_id = unique("order")
    key = f"collect-payment/{order_id}"
    first = await post_run(api, "collect-payment", order_id, ["100"])
    assert first.status_code == 200 and first.json()["status"] == "succeeded"

    for other in (["200"], ["100", "USD"], []):
        response = await post_run(api, "collect-payment", order_id, other)
        body = assert_problem(response, 422, "idempotency_key_reused")
        assert body["order_id"] == order_id

    assert len(payment_lines(api.settings, key)) == 1
    again = await post_run(api, "collect-payment", order_id, ["100"])
    assert again.status_code == 200 and again.json() == first.json()
    # The same order for another script is another key.
    refund = await post_run(api, "refund-payment", order_id, ["200"])
    assert refund.status_code == 200 and refund.json()["status"] == "succeeded"


async def test_concurrent_claims_with_different_args_let_exactly_one_run(api: Api) -> None:
    order_id = unique("order")

    responses = await at_once(
        6, lambda i: post_run(api, "collect-payment", order_id, [str(100 + i % 2)])
    )

    ok = [response for response in responses if response.status_code == 200]
    refused = [response for response in responses if response.status_code == 422]
    assert len(ok) + len(refused) == 6 and ok and refused
    winner = ok[0].json()
    assert all(response.json() == winner for response in ok)
    assert {response.json()["code"] for response in refused} == {"idempotency_key_reused"}
    lines = payment_lines(api.settings, f"collect-payment/{order_id}")
    assert len(lines) == 1 and winner["stdout"].startswith(f"collected {lines[0].split()[2]} ")


# Outcomes ----------------------------------------------------------------------------


async def test_failing_script_is_a_decided_failed_run(api: Api) -> None:
    order_id = unique("order")
    response = await post_run(api, "fail-payment", order_id, [])

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed" and body["exit_code"] == 3
    assert body["stderr"] == "card declined\n" and body["stdout"] == ""
    assert body["attempts"] == 1 and body["reason"] is None
    fetched = await api.http.get(f"{run_path('fail-payment')}/{order_id}")
    assert fetched.status_code == 200 and fetched.json() == body


async def test_a_failed_script_completes_its_workflow_and_logs_one_line(
    api: Api, client: Client, caplog: pytest.LogCaptureFixture
) -> None:
    """The script's exit code is a business outcome: COMPLETED, one line, no traceback."""
    caplog.set_level(logging.INFO)
    order_id = unique("order")
    response = await post_run(api, "fail-payment", order_id, [])

    assert response.status_code == 200 and response.json()["status"] == "failed"
    workflow_id = response.json()["workflow_id"]
    description = await client.get_workflow_handle(workflow_id).describe()
    assert description.status == WorkflowExecutionStatus.COMPLETED
    faults = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert [r.getMessage() for r in faults] == []
    mentions = [r.getMessage() for r in caplog.records if order_id in r.getMessage()]
    assert len(mentions) == 1
    assert f"script run fail-payment/{order_id} failed: exit code 3 ({workflow_id})" in mentions[0]


async def test_timeout_fails_with_null_exit_code_and_kills_the_script_and_its_child(
    api: Api, leftover_pids: list[int]
) -> None:
    order_id = unique("order")
    started = time.monotonic()
    response = await post_run(api, "slow-payment", order_id, [])

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "failed" and body["exit_code"] is None
    assert body["attempts"] == 1
    assert "timeout after 2s" in body["reason"]
    assert time.monotonic() - started < 20
    data_dir = api.settings.data_dir
    main_pid = int((data_dir / "slow.pid").read_text())
    child_pid = int((data_dir / "slow-child.pid").read_text())
    leftover_pids.extend([main_pid, child_pid])
    await wait_gone(main_pid, child_pid, seconds=15)


async def test_shell_metacharacters_arrive_verbatim_and_execute_nothing(
    api: Api, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    args = [
        f"$(touch {marker})",
        f"`touch {marker}`",
        f"; touch {marker}",
        f"| touch {marker}",
        f"&& touch {marker}",
        f"> {marker}",
        "$HOME ${PATH} $((1+1))",
        "*",
        "a b  c",
        "'single' \"double\" \\back",
        "line1\nline2",
        "-e",
        "",
        "ünïcødé ✓",
    ]
    expected = "".join(f"{arg}\n" for arg in args)

    idempotent = await post_run(api, "echo-args", unique("order"), args)
    naive = await api.http.post(
        f"/naive{run_path('echo-args')}", json={"order_id": unique("order"), "args": args}
    )

    assert idempotent.status_code == 200 and naive.status_code == 200
    assert idempotent.json()["status"] == "succeeded"
    assert idempotent.json()["stdout"] == expected
    assert naive.json()["stdout"] == expected and naive.json()["exit_code"] == 0
    assert not marker.exists()
    assert list(tmp_path.glob("*pwned*")) == []


async def test_retries_as_many_as_the_header_allows(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """Failed attempts with attempts left are business too: retried without a traceback."""
    caplog.set_level(logging.INFO)
    order_id = unique("order")
    response = await post_run(api, "flaky-payment", order_id, [])
    faults = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert [r.getMessage() for r in faults] == []

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "succeeded" and body["exit_code"] == 0
    assert body["attempts"] == 3
    assert body["stdout"] == "attempt 3 run 3\n"
    count = (api.settings.data_dir / f"flaky-{order_id}.count").read_text()
    assert count.strip() == "3"
