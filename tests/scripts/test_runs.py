"""Payment scripts exactly once per order: the script routes and SinglePaymentCollectionWorkflow
on the real app, dev server, databases and subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from superscript.batches.activities import BatchActivities
from superscript.batches.models import FetchRunInput
from superscript.batches.store import BatchStore
from superscript.ledger import IdempotencyKeyReused, Ledger
from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry
from superscript.scripts.activities import SHUTDOWN_REASON, ScriptActivities
from superscript.scripts.client import ScriptHandle, collection_input, start_script_workflow
from superscript.scripts.models import (
    RunPaymentScriptInput,
    ScriptOutcome,
    ScriptRunResult,
    SinglePaymentCollectionInput,
    script_workflow_id,
)
from superscript.scripts.records import ScriptRuns, args_digest
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.conftest import Api, serve_app, unique

PROBLEM = "application/problem+json"
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

FLAKY = """#!/usr/bin/env bash
# superscript.description: Fails twice, then succeeds (counts its runs per order)
# superscript.timeout: 10
# superscript.max_attempts: 3
set -euo pipefail
count_file="$SUPERSCRIPT_DATA_DIR/flaky-$SUPERSCRIPT_ORDER_ID.count"
count=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
printf '%s\\n' "$count" >"$count_file"
echo "attempt $SUPERSCRIPT_ATTEMPT run $count"
if (( count < 3 )); then
  echo "gateway busy" >&2
  exit 1
fi
"""

HANG = """#!/usr/bin/env bash
# superscript.description: Collects, then hangs until killed (for worker shutdown tests)
# superscript.timeout: 60
set -euo pipefail
printf '%s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" >>"$SUPERSCRIPT_DATA_DIR/payments.log"
printf '%s\\n' "$$" >"$SUPERSCRIPT_DATA_DIR/hang.pid.tmp"
mv -f "$SUPERSCRIPT_DATA_DIR/hang.pid.tmp" "$SUPERSCRIPT_DATA_DIR/hang.pid"
sleep 300
"""


# Two scripts whose keys collided under the old IDs: pay + x-1 and pay-x + 1.
PAY = """#!/usr/bin/env bash
# superscript.description: Appends its name and order to pay.log (for the old-ID tests)
set -euo pipefail
printf '%s %s\\n' "{name}" "$SUPERSCRIPT_ORDER_ID" >>"$SUPERSCRIPT_DATA_DIR/pay.log"
echo "paid by {name}"
"""


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    """The bundled scripts plus test scripts, and a file that is not executable."""
    path = tmp_path / "scripts"
    shutil.copytree(BUNDLED_SCRIPTS_DIR, path)
    for name, body in (
        ("flaky-payment.sh", FLAKY),
        ("hang-payment.sh", HANG),
        ("pay.sh", PAY.replace("{name}", "pay")),
        ("pay-x.sh", PAY.replace("{name}", "pay-x")),
    ):
        (path / name).write_text(body)
        (path / name).chmod(0o755)
    plain = path / "not-executable.sh"
    plain.write_text('#!/usr/bin/env bash\necho ran >>"$SUPERSCRIPT_DATA_DIR/payments.log"\n')
    plain.chmod(0o644)
    return path


@pytest.fixture
def settings(settings: Settings, scripts_dir: Path) -> Settings:
    """conftest's settings (data dir = this test's tmp_path) with our scripts dir."""
    return settings.model_copy(update={"scripts_dir": scripts_dir})


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """PIDs a test saw; killed at the end if a failing test left them running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def _until(condition: Callable[[], bool], what: str, seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


def payment_lines(settings: Settings, key: str | None = None) -> list[str]:
    log = settings.data_dir / "payments.log"
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [line for line in lines if key is None or line.split()[0] == key]


def run_path(name: str) -> str:
    return f"/scripts/{name}/runs"


async def post_run(api: Api, name: str, order_id: str, args: list[str]) -> httpx.Response:
    return await api.http.post(run_path(name), json={"order_id": order_id, "args": args})


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["status"] == status
    return body


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
    barrier = asyncio.Barrier(10)

    async def call() -> httpx.Response:
        await barrier.wait()
        return await post_run(api, "collect-payment", order_id, ["1250", "EUR"])

    responses = await asyncio.gather(*(call() for _ in range(10)))

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
    barrier = asyncio.Barrier(3)

    async def call() -> httpx.Response:
        await barrier.wait()
        return await api.http.post(
            f"/naive{run_path('collect-payment')}", json={"order_id": order_id, "args": ["500"]}
        )

    responses = await asyncio.gather(*(call() for _ in range(3)))

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
    barrier = asyncio.Barrier(6)

    async def call(amount: str) -> httpx.Response:
        await barrier.wait()
        return await post_run(api, "collect-payment", order_id, [amount])

    responses = await asyncio.gather(*(call(str(100 + i % 2)) for i in range(6)))

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
    await _until(lambda: _gone(main_pid) and _gone(child_pid), "the script and its child gone")


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


# Refusals: nothing runs --------------------------------------------------------------


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


# Pending, lost and stopped workers ---------------------------------------------------


async def test_pending_when_no_worker_decides_in_time(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    """No worker polls this queue: 202 pending; a terminated run is a 503, never re-run."""
    idle = settings.model_copy(update={"task_queue": unique("idle"), "result_wait_seconds": 0.3})
    async with serve_app(idle, ledger, client) as api:
        order_id = unique("order")
        workflow_id = f"SCRIPT-WF-collect-payment/{order_id}"

        posted = await post_run(api, "collect-payment", order_id, ["7"])
        fetched = await api.http.get(f"{run_path('collect-payment')}/{order_id}")

        expected = {"order_id": order_id, "status": "pending", "workflow_id": workflow_id}
        assert posted.status_code == 202 and posted.json() == expected
        assert fetched.status_code == 202 and fetched.json() == expected
        assert_problem(
            await post_run(api, "collect-payment", order_id, ["8"]), 422, "idempotency_key_reused"
        )

        await client.get_workflow_handle(workflow_id).terminate("test cleanup")
        closed = assert_problem(
            await api.http.get(f"{run_path('collect-payment')}/{order_id}"), 503, "workflow_failed"
        )
        assert closed["detail"].startswith(f"{workflow_id} closed (TERMINATED) ")
        assert_problem(
            await post_run(api, "collect-payment", order_id, ["7"]), 503, "workflow_failed"
        )
        assert payment_lines(api.settings) == []


@pytest.fixture
async def script_activities(ledger: Ledger, settings: Settings) -> ScriptActivities:
    return ScriptActivities.from_settings(ledger.engine, settings)


@contextlib.asynccontextmanager
async def quick_worker(
    client: Client, settings: Settings, *activities: Callable[..., Any]
) -> AsyncIterator[Worker]:
    """A worker of the script workflow that cancels its activities as soon as it stops."""
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[SinglePaymentCollectionWorkflow],
        activities=list(activities),
        graceful_shutdown_timeout=timedelta(0),
    )
    async with worker:
        yield worker


async def test_worker_shutdown_during_the_run_fails_it_and_never_reruns(
    client: Client,
    settings: Settings,
    script_activities: ScriptActivities,
    leftover_pids: list[int],
) -> None:
    spec = Registry(settings.scripts_dir).get("hang-payment")
    order_id = unique("order")
    pid_file = settings.data_dir / "hang.pid"

    async with quick_worker(
        client,
        settings,
        script_activities.run_payment_script,
        script_activities.record_script_result,
    ) as worker:
        handle = await start_script_workflow(
            client, collection_input(spec, order_id, []), settings.task_queue
        )
        await _until(pid_file.exists, "the script started")
        pid = int(pid_file.read_text())
        leftover_pids.append(pid)
        await worker.shutdown()
    await _until(lambda: _gone(pid), "the script killed by the stopping worker")

    # Another worker takes over the workflow: it records the failure, it runs nothing.
    async with quick_worker(
        client,
        settings,
        script_activities.run_payment_script,
        script_activities.record_script_result,
    ):
        result = await handle.result()

    assert result.status == "failed" and result.exit_code is None
    assert result.reason == SHUTDOWN_REASON and result.attempts == 1
    assert len(payment_lines(settings, f"hang-payment/{order_id}")) == 1
    record = await script_activities.runs.get("hang-payment", order_id)
    assert record is not None and record.result == result


async def test_cancelled_run_kills_the_script_and_is_a_failed_run(
    client: Client,
    settings: Settings,
    script_activities: ScriptActivities,
    leftover_pids: list[int],
) -> None:
    spec = Registry(settings.scripts_dir).get("hang-payment")
    order_id = unique("order")
    pid_file = settings.data_dir / "hang.pid"
    # A short heartbeat timeout: the cancellation reaches the activity with a heartbeat.
    input = collection_input(spec, order_id, []).model_copy(
        update={"heartbeat_timeout_seconds": 2.0}
    )

    async with quick_worker(
        client,
        settings,
        script_activities.run_payment_script,
        script_activities.record_script_result,
    ):
        handle = await start_script_workflow(client, input, settings.task_queue)
        await _until(pid_file.exists, "the script started")
        pid = int(pid_file.read_text())
        leftover_pids.append(pid)
        await handle.cancel()
        result = await handle.result()

    assert _gone(pid)
    assert result.status == "failed" and result.exit_code is None
    assert result.reason is not None and result.reason.startswith("cancelled")
    record = await script_activities.runs.get("hang-payment", order_id)
    assert record is not None and record.result == result


class StalledActivities:
    """A worker that took the attempt and then went silent (as if it had died)."""

    def __init__(self) -> None:
        self.calls = 0

    @activity.defn(name="run_payment_script")
    async def run_payment_script(self, input: RunPaymentScriptInput) -> ScriptOutcome:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


async def test_lost_worker_with_one_attempt_is_a_failed_run_not_a_rerun(
    client: Client, settings: Settings, script_activities: ScriptActivities
) -> None:
    stalled = StalledActivities()
    order_id = unique("order")
    input = SinglePaymentCollectionInput(
        script="collect-payment",
        order_id=order_id,
        args=["1"],
        max_attempts=1,
        timeout_seconds=30,
        heartbeat_timeout_seconds=1,
    )
    async with quick_worker(
        client, settings, stalled.run_payment_script, script_activities.record_script_result
    ):
        handle = await start_script_workflow(client, input, settings.task_queue)
        result = await handle.result()

    assert stalled.calls == 1
    assert result.status == "failed" and result.exit_code is None and result.attempts == 1
    assert result.reason is not None and result.reason.startswith("worker lost during the run")
    assert result.workflow_id == script_workflow_id("collect-payment", order_id)
    assert payment_lines(settings) == []
    record = await script_activities.runs.get("collect-payment", order_id)
    assert record is not None and record.result == result and record.args == ["1"]


async def test_the_first_stored_result_is_the_answer(
    client: Client, settings: Settings, script_activities: ScriptActivities
) -> None:
    """As when an attempt Temporal gave up on stored its real outcome first."""
    stalled = StalledActivities()
    order_id = unique("order")
    stored = _result("collect-payment", order_id, "collected by the lost attempt")
    await script_activities.runs.record_result(stored, ["1"])
    input = SinglePaymentCollectionInput(
        script="collect-payment",
        order_id=order_id,
        args=["1"],
        max_attempts=1,
        timeout_seconds=30,
        heartbeat_timeout_seconds=1,
    )
    async with quick_worker(
        client, settings, stalled.run_payment_script, script_activities.record_script_result
    ):
        handle = await start_script_workflow(client, input, settings.task_queue)
        assert await handle.result() == stored


# Records stored under the old IDs (SCRIPT-WF-{name}-{order_id}) ------------------------


def pay_lines(settings: Settings) -> list[str]:
    log = settings.data_dir / "pay.log"
    return log.read_text().splitlines() if log.exists() else []


def old_workflow_id(script: str, order_id: str) -> str:
    """The ID the code built before ``SCRIPT-WF-{name}/{order_id}``: ambiguous."""
    return f"SCRIPT-WF-{script}-{order_id}"


async def start_old_run(
    client: Client, settings: Settings, runs: ScriptRuns, script: str, order_id: str
) -> ScriptHandle:
    """What the old code did for a key: claim it under the old ID, start that workflow."""
    spec = Registry(settings.scripts_dir).get(script)
    workflow_id = old_workflow_id(script, order_id)
    await runs.claim(script, order_id, [], workflow_id)
    return await client.start_workflow(
        SinglePaymentCollectionWorkflow.run,
        collection_input(spec, order_id, []),
        id=workflow_id,
        task_queue=settings.task_queue,
    )


async def test_a_collided_old_id_runs_the_keys_own_script(api: Api, client: Client) -> None:
    """pay/x-{u} ran under SCRIPT-WF-pay-x-{u}; pay-x/{u}'s pending record names it too."""
    runs = ScriptRuns(api.ledger.engine)
    u = unique("o")
    old_id = old_workflow_id("pay", f"x-{u}")
    assert old_id == old_workflow_id("pay-x", u)
    paid = await (await start_old_run(client, api.settings, runs, "pay", f"x-{u}")).result()
    await runs.claim("pay-x", u, [], old_id)  # as the old code did: its run never began

    waiting = await api.http.get(f"{run_path('pay-x')}/{u}")
    response = await post_run(api, "pay-x", u, [])

    assert waiting.status_code == 202 and waiting.json()["workflow_id"] == f"SCRIPT-WF-pay-x/{u}"
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["script"], body["order_id"], body["status"]) == ("pay-x", u, "succeeded")
    assert body["workflow_id"] == f"SCRIPT-WF-pay-x/{u}" and body["stdout"] == "paid by pay-x\n"
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]
    assert (await api.http.get(f"{run_path('pay-x')}/{u}")).json() == body

    # The decided record under the old ID keeps answering from its stored result.
    assert paid.workflow_id == old_id
    for answer in (
        await post_run(api, "pay", f"x-{u}", []),
        await api.http.get(f"{run_path('pay')}/x-{u}"),
    ):
        assert answer.status_code == 200 and answer.json() == paid.model_dump()
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]


async def test_a_pending_old_id_record_joins_its_own_workflow(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    """The key's run started under the old ID and is still going: joined, never re-run."""
    runs = ScriptRuns(ledger.engine)
    order_id = f"x-{unique('o')}"
    old_id = old_workflow_id("pay", order_id)
    quick = settings.model_copy(update={"result_wait_seconds": 0.3})
    async with serve_app(quick, ledger, client) as api:
        # No worker yet: the old run is open when the new code is asked about the key.
        await start_old_run(client, settings, runs, "pay", order_id)
        posted = await post_run(api, "pay", order_id, [])
        fetched = await api.http.get(f"{run_path('pay')}/{order_id}")
        pending = {"order_id": order_id, "status": "pending", "workflow_id": old_id}
        assert posted.status_code == 202 and posted.json() == pending
        assert fetched.status_code == 202 and fetched.json() == pending

    async with build_worker(client, ledger, settings), serve_app(settings, ledger, client) as api:
        decided = await post_run(api, "pay", order_id, [])
        assert decided.status_code == 200, decided.text
        assert decided.json()["workflow_id"] == old_id
        assert (decided.json()["script"], decided.json()["order_id"]) == ("pay", order_id)
        assert pay_lines(settings) == [f"pay {order_id}"]
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle(script_workflow_id("pay", order_id)).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_a_batch_follows_a_pending_old_id_record_to_its_workflow(
    api: Api, client: Client
) -> None:
    """``fetch_script_run`` waits on the workflow the record names, not on a new ID."""
    runs = ScriptRuns(api.ledger.engine)
    order_id = f"x-{unique('o')}"
    await start_old_run(client, api.settings, runs, "pay", order_id)
    activities = BatchActivities(
        BatchStore(api.ledger), Registry(api.settings.scripts_dir), runs, client
    )

    done = await ActivityEnvironment().run(
        activities.fetch_script_run, FetchRunInput(seq=0, script="pay", order_id=order_id)
    )

    assert (done.status, done.outcome, done.exit_code) == ("replayed", "succeeded", 0)
    assert pay_lines(api.settings) == [f"pay {order_id}"]


async def test_a_batch_runs_a_key_whose_old_id_another_key_holds(api: Api, client: Client) -> None:
    """pay-x/{u}'s pending record names SCRIPT-WF-pay-x-{u}, which pay/x-{u} ran: the batch
    runs pay-x/{u} under its own ID instead of waiting on the other key's run forever."""
    runs = ScriptRuns(api.ledger.engine)
    u = unique("o")
    old_id = old_workflow_id("pay-x", u)
    await (await start_old_run(client, api.settings, runs, "pay", f"x-{u}")).result()
    await runs.claim("pay-x", u, [], old_id)  # as the old code did: its run never began
    batch_id = unique("b")

    response = await api.http.post(
        "/batches",
        json={
            "batch_id": batch_id,
            "kind": "script",
            "script": "pay-x",
            "items": [{"order_id": u}],
        },
    )
    assert response.status_code == 202, response.text
    await client.get_workflow_handle(f"BATCH-WF-{batch_id}").result()

    status = (await api.http.get(f"/batches/{batch_id}")).json()
    assert (status["status"], status["succeeded"], status["failed"]) == ("completed", 1, 0)
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]
    run = (await api.http.get(f"{run_path('pay-x')}/{u}")).json()
    assert (run["script"], run["order_id"], run["status"]) == ("pay-x", u, "succeeded")
    assert run["workflow_id"] == script_workflow_id("pay-x", u)


# The record --------------------------------------------------------------------------


def _result(script: str, order_id: str, stdout: str) -> ScriptRunResult:
    return ScriptRunResult(
        order_id=order_id,
        script=script,
        status="succeeded",
        exit_code=0,
        stdout=stdout,
        stderr="\x00 control \x1b and ✓",
        attempts=1,
        workflow_id=script_workflow_id(script, order_id),
        run_id="run",
    )


async def test_records_claim_once_and_keep_the_first_result(ledger: Ledger) -> None:
    runs = ScriptRuns(ledger.engine)
    order_id = unique("order")
    workflow_id = script_workflow_id("s", order_id)
    args = ["a", "b c", "ü"]
    barrier = asyncio.Barrier(8)

    async def claim(variant: int) -> object:
        await barrier.wait()
        try:
            return await runs.claim("s", order_id, [*args, str(variant % 2)], workflow_id)
        except IdempotencyKeyReused as exc:
            return exc

    outcomes = await asyncio.gather(*(claim(i) for i in range(8)))

    refused = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyKeyReused)]
    assert len(refused) == 4
    record = await runs.get("s", order_id)
    assert record is not None and record.status == "pending" and record.result is None
    assert record.args_hash == args_digest(record.args)

    first = _result("s", order_id, "first")
    stored = await runs.record_result(first, record.args)
    again = await runs.record_result(_result("s", order_id, "second"), record.args)
    assert stored.result == again.result == first
    assert again.status == "succeeded" and again.args == record.args

    # A run started without a claim (another path) is recorded all the same.
    other = _result("s", unique("order"), "unclaimed")
    unclaimed = await runs.record_result(other, ["x"])
    assert unclaimed.result == other and unclaimed.args == ["x"]
