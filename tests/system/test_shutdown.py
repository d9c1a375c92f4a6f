"""SIGTERM to each command while work is in flight: it answers, finishes, and exits in time."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from superscript import runtime
from superscript.fees.models import fee_workflow_id
from superscript.ledger import Ledger
from superscript.settings import Settings
from superscript.worker import GRACEFUL_SHUTDOWN
from tests.conftest import unique
from tests.processes import (
    WORKER_READY,
    Service,
    Stack,
    free_port,
    kill_tree,
    service_env,
    start,
    wait_for_log,
    wait_healthy,
    wait_until,
)

# A script that pays (one line in payments.log per run) and takes about a second.
SLOW_COLLECT = """#!/usr/bin/env bash
# superscript.description: Collect one payment slowly (test)
# superscript.timeout: 30
# superscript.max_attempts: 1
set -euo pipefail
printf '%s %s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" "$SUPERSCRIPT_ORDER_ID" \\
  >>"$SUPERSCRIPT_DATA_DIR/payments.log"
sleep 1
echo "collected for $SUPERSCRIPT_ORDER_ID"
"""


def scripts_dir(root: Path) -> Path:
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / "slow-collect.sh"
    script.write_text(SLOW_COLLECT)
    script.chmod(0o755)
    return scripts


def payments(data_dir: Path) -> Counter[str]:
    log = data_dir / "payments.log"
    if not log.exists():
        return Counter()
    return Counter(line.split()[1] for line in log.read_text().splitlines() if line.strip())


@contextlib.asynccontextmanager
async def opened(url: str) -> AsyncIterator[Ledger]:
    ledger = await Ledger.open(url)
    try:
        yield ledger
    finally:
        await ledger.close()


async def wait_workflows_started(
    client: Client, workflow_ids: list[str], *watched: Service
) -> None:
    async def all_started() -> bool:
        for workflow_id in workflow_ids:
            try:
                await client.get_workflow_handle(workflow_id).describe()
            except RPCError as exc:
                if exc.status == RPCStatusCode.NOT_FOUND:
                    return False
                raise
        return True

    await wait_until(all_started, "every request's workflow started", 60, *watched, interval=0.2)


def check_answers(answers: list[httpx.Response | BaseException]) -> Counter[int]:
    """Every request got an answer: done (202 pending here) or a 503 problem; none dropped."""
    codes: Counter[int] = Counter()
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"no answer, the connection was cut: {answer!r}"
        codes[answer.status_code] += 1
        if answer.status_code == 202:
            assert answer.json()["status"] == "pending", answer.text
        else:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json", answer.headers
            assert answer.json()["code"], answer.text
    return codes


# --- the API ----------------------------------------------------------------------------


async def test_api_sigterm_answers_requests_in_flight(
    tmp_path: Path, temporal_address: str, client: Client
) -> None:
    """20 fee POSTs wait for outcomes no worker can give yet; SIGTERM; each is answered."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    result_wait = 4.0
    stack = Stack.configure(
        tmp_path,
        temporal_address=temporal_address,
        database_url=url,
        data_dir=tmp_path,
        task_queue=unique("tq-shutdown"),
        SUPERSCRIPT_RESULT_WAIT_SECONDS=str(result_wait),
    )
    account_id = unique("acc")
    orders = [unique("ord") for _ in range(20)]
    try:
        api = stack.start_api()
        await stack.wait_ready()
        async with opened(url) as ledger:
            await ledger.create_account(account_id, 10_000)
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
            calls = [
                asyncio.create_task(
                    http.post(
                        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 100}
                    )
                )
                for order_id in orders
            ]
            # Past the start of its workflow, each request now waits for an outcome.
            await wait_workflows_started(client, [fee_workflow_id(o) for o in orders], api)
            stopping = time.monotonic()
            code = await api.terminate(grace=runtime.API_GRACEFUL_SHUTDOWN_SECONDS + 10)
            took = time.monotonic() - stopping
            answers = await asyncio.gather(*calls, return_exceptions=True)
        assert code == 0, api.output()
        assert took < result_wait + 10, f"the API took {took:.1f}s to stop"
        codes = check_answers(answers)
        assert codes[202] + codes[503] == 20, codes

        # Nothing was lost: with a worker, every order is charged, once.
        stack.start_worker()
        stack.start_api()
        await stack.wait_ready()
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
            again = await asyncio.gather(
                *(
                    http.post(
                        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 100}
                    )
                    for order_id in orders
                )
            )
        assert {answer.status_code for answer in again} == {200}, [a.text for a in again]
        async with opened(url) as ledger:
            assert [await ledger.charges_for(order_id) for order_id in orders] == [1] * 20
            assert (await ledger.get_account(account_id)).balance == 10_000 - 20 * 100
        codes_at_stop = await stack.stop()
        assert set(codes_at_stop.values()) == {0}, stack.logs()
    finally:
        stack.kill_all()


async def test_api_requests_cut_at_the_grace_period_get_503(
    tmp_path: Path, temporal_address: str, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests still waiting when the grace period ends get a 503 problem, not a 500.

    In process, with a grace of 1 s (the command's is 35 s), so the test is quick: the stop
    event is what SIGTERM sets in ``superscript api``.
    """
    monkeypatch.setattr(runtime, "API_GRACEFUL_SHUTDOWN_SECONDS", 1)
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        task_queue=unique("tq-cut"),
        port=free_port(),
        result_wait_seconds=60,
    )
    account_id = unique("acc")
    orders = [unique("ord") for _ in range(10)]
    async with opened(settings.database_url) as ledger:
        await ledger.create_account(account_id, 10_000)
    stop = asyncio.Event()
    serving = asyncio.create_task(runtime.serve_api(settings, stop))
    base = f"http://127.0.0.1:{settings.port}"
    try:

        async def healthy() -> bool:
            assert not serving.done(), serving
            try:
                async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                    return (await probe.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(healthy, "the in-process API healthy", 60)
        async with httpx.AsyncClient(base_url=base, timeout=90) as http:
            calls = [
                asyncio.create_task(
                    http.post(
                        f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 10}
                    )
                )
                for order_id in orders
            ]
            await wait_workflows_started(client, [fee_workflow_id(o) for o in orders])
            stopping = time.monotonic()
            stop.set()
            await asyncio.wait_for(serving, 30)
            took = time.monotonic() - stopping
            answers = await asyncio.gather(*calls, return_exceptions=True)
    finally:
        stop.set()
        with contextlib.suppress(BaseException):
            await asyncio.wait_for(serving, 30)
    assert took < 10, f"the API took {took:.1f}s to stop"
    codes = check_answers(answers)
    assert codes == Counter({503: 10}), codes
    body: dict[str, Any] = answers[0].json()  # type: ignore[union-attr]
    assert body["code"] == "shutting_down", body


# --- the worker -------------------------------------------------------------------------


async def test_worker_sigterm_finishes_activities_in_flight(
    tmp_path: Path, temporal_address: str
) -> None:
    """SIGTERM to a worker running scripts and fee chunks: it finishes them and exits in time;
    the other worker does the rest; no key runs twice, no order is charged twice."""
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    stack = Stack.configure(
        tmp_path,
        temporal_address=temporal_address,
        database_url=url,
        data_dir=tmp_path,
        task_queue=unique("tq-shutdown"),
        SUPERSCRIPT_SCRIPTS_DIR=str(scripts_dir(tmp_path)),
    )
    openings = {unique("acc"): 50_000 for _ in range(10)}
    accounts = list(openings)
    fee_items = [
        {"order_id": unique(f"fee{n}"), "account_id": accounts[n % 10], "amount": 1 + n % 97}
        for n in range(2_000)
    ]
    script_items: list[dict[str, Any]] = [
        {"order_id": unique(f"pay{n}"), "args": []} for n in range(120)
    ]
    try:
        stack.start_api()
        doomed = stack.start_worker()
        await stack.wait_ready()
        async with opened(url) as ledger:
            for account_id, balance in openings.items():
                await ledger.create_account(account_id, balance)
        script_batch, fee_batch = unique("pay"), unique("fee")
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
            for body in (
                {
                    "batch_id": script_batch,
                    "kind": "script",
                    "script": "slow-collect",
                    "items": script_items,
                },
                {"batch_id": fee_batch, "kind": "fee", "items": fee_items},
            ):
                answer = await http.post("/batches", json=body)
                assert answer.status_code == 202, answer.text

            # SIGTERM once the doomed worker runs scripts; then a second worker joins.
            async def running_scripts() -> bool:
                children = psutil.Process(doomed.process.pid).children(recursive=True)
                return any("slow-collect" in " ".join(child.cmdline()) for child in children)

            await wait_until(running_scripts, "scripts running on the worker", 60, doomed)
            stopping = time.monotonic()
            doomed.process.send_signal(signal.SIGTERM)
            survivor = stack.start_worker()
            code = await doomed.terminate(grace=GRACEFUL_SHUTDOWN.total_seconds() + 15)
            took = time.monotonic() - stopping
            await wait_for_log(survivor, WORKER_READY)

            statuses: list[dict[str, Any]] = []

            async def completed() -> bool:
                statuses.clear()
                for batch_id in (script_batch, fee_batch):
                    statuses.append((await http.get(f"/batches/{batch_id}")).json())
                return all(status["status"] == "completed" for status in statuses)

            await wait_until(completed, "both batches completed", 120, survivor)
        assert code == 0, doomed.output()
        assert took < GRACEFUL_SHUTDOWN.total_seconds() + 10, f"the worker took {took:.1f}s"
        fee_status = next(s for s in statuses if s["kind"] == "fee")
        script_status = next(s for s in statuses if s["kind"] == "script")
        assert fee_status["succeeded"] == 2_000 and fee_status["pending"] == 0, fee_status
        # The scripts the stopping worker ran were finished, not cut: every run succeeded.
        assert script_status["succeeded"] == 120, script_status
        runs = payments(tmp_path)
        assert all(runs[item["order_id"]] == 1 for item in script_items), runs
        assert sum(runs.values()) == 120
        async with opened(url) as ledger:
            for item in fee_items:
                assert await ledger.charges_for(str(item["order_id"])) == 1, item
            total = sum(openings.values())
            assert await ledger.invariant(accounts) == (total, total)
        assert set((await stack.stop()).values()) == {0}, stack.logs()
    finally:
        stack.kill_all()


# --- superscript up ---------------------------------------------------------------------


def alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def test_up_sigterm_stops_everything(tmp_path: Path) -> None:
    """SIGTERM to ``superscript up`` with scripts running: all of it exits, no orphan left."""
    data_dir = tmp_path / "data"
    ports = {
        "SUPERSCRIPT_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_UI_PORT": str(free_port()),
    }
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_SCRIPTS_DIR=str(scripts_dir(tmp_path)),
        **ports,
    )
    base = f"http://127.0.0.1:{ports['SUPERSCRIPT_PORT']}"
    up = start("up", ["up"], env, tmp_path)
    try:
        await wait_healthy(base, up)
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            batch_id = unique("pay")
            items = [{"order_id": unique(f"pay{n}"), "args": []} for n in range(20)]
            answer = await http.post(
                "/batches",
                json={
                    "batch_id": batch_id,
                    "kind": "script",
                    "script": "slow-collect",
                    "items": items,
                },
            )
            assert answer.status_code == 202, answer.text

        root = psutil.Process(up.process.pid)

        async def scripts_running() -> bool:
            return any("slow-collect" in " ".join(c.cmdline()) for c in root.children(True))

        await wait_until(scripts_running, "scripts running under up", 60, up)
        family = root.children(recursive=True)
        assert any("temporal" in child.name() for child in family)
        stopping = time.monotonic()
        code = await up.terminate(grace=runtime.API_GRACEFUL_SHUTDOWN_SECONDS + 30)
        took = time.monotonic() - stopping
    finally:
        kill_tree(up)
    assert code == 0, up.output()
    assert took < GRACEFUL_SHUTDOWN.total_seconds() + 15, f"up took {took:.1f}s to stop"

    async def all_gone() -> bool:
        return not any(alive(process) for process in family)

    await wait_until(all_gone, "every process of up gone", 10)
    db = str((data_dir / "temporal.db").resolve())
    orphans = [
        p for p in psutil.process_iter(["cmdline"]) if db in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in orphans if alive(p) and p.pid != os.getpid()], orphans
    # The scripts in flight at SIGTERM finished: each ran once, none was cut.
    runs = payments(data_dir)
    assert all(count == 1 for count in runs.values()), runs


# --- keep-alive -------------------------------------------------------------------------


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response (status line, headers, Content-Length body); b"" at EOF."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return b""
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def test_api_keeps_an_idle_connection_past_a_client_pools_expiry(
    tmp_path: Path, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server never closes an idle connection a client's pool may still pick.

    httpx keeps an idle connection for 5 s, uvicorn closed it at 5 s: a request sent on it
    as the server closed it was reset unread (``httpx.ReadError`` on a loaded machine). So
    one connection, idle past httpx's expiry, must still carry the next request.
    """
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert client_expiry < runtime.API_KEEP_ALIVE_SECONDS
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)
    settings = Settings(
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        task_queue=unique("tq-keepalive"),
        port=free_port(),
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(runtime.serve_api(settings, stop))
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    try:

        async def listening() -> bool:
            assert not serving.done(), serving
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", settings.port)
            except OSError:
                return False
            probe.close()
            return True

        await wait_until(listening, "the in-process API listening", 60)
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        try:
            writer.write(request)
            assert (await _read_response(reader)).startswith(b"HTTP/1.1 ")
            # Idle for longer than a client's pool would keep it: still open on our side.
            await asyncio.sleep(client_expiry + 1)
            writer.write(request)
            again = await _read_response(reader)
        finally:
            writer.close()
        assert again.startswith(b"HTTP/1.1 "), "the server closed the idle connection"
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)
