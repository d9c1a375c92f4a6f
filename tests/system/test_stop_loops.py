"""Start and stop each service command many times with work in flight: every stop is clean.

A stop is clean when the process exits with its own code (0 for SIGTERM or SIGINT once it
runs) and its log has no ``Fatal Python error``: Temporal's native threads could outlive
the interpreter's finalization and abort it (-6, temporalio/sdk-python#300), so a worker
that had finished all its work still "crashed" one stop in a few.

CI runs a short loop (``SUPERSCRIPT_STOP_LOOPS``, default 3 per command); run the long
one with ``SUPERSCRIPT_STOP_LOOPS=50 pytest tests/system/test_stop_loops.py -s``: each test
prints how many of its stops were clean before it asserts that all were.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil
import pytest
from temporalio.client import Client

from tests.conftest import unique
from tests.processes import (
    WORKER_READY,
    Service,
    free_port,
    kill_tree,
    service_env,
    start,
    wait_dev_server,
    wait_for_log,
    wait_healthy,
    wait_until,
)

LOOPS = int(os.environ.get("SUPERSCRIPT_STOP_LOOPS", "3"))
FATAL = "Fatal Python error"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(300, LOOPS * 60))]

# Pays slowly enough to be caught running (one line in payments.log per run).
SLOW_COLLECT = """#!/usr/bin/env bash
# superscript.description: Collect one payment slowly (test)
# superscript.timeout: 30
set -euo pipefail
echo "$SUPERSCRIPT_IDEMPOTENCY_KEY" >>"$SUPERSCRIPT_DATA_DIR/payments.log"
sleep 3
echo "collected for $SUPERSCRIPT_ORDER_ID"
"""


def scripts_dir(root: Path) -> Path:
    scripts = root / "scripts"
    scripts.mkdir(parents=True, exist_ok=True)
    script = scripts / "slow-collect.sh"
    script.write_text(SLOW_COLLECT)
    script.chmod(0o755)
    return scripts


@dataclass
class Tally:
    """The exit of every stop of one command, and what made a stop unclean."""

    command: str
    codes: Counter[int] = field(default_factory=Counter)
    unclean: list[str] = field(default_factory=list)

    def record(self, run: int, sig: signal.Signals, service: Service, code: int) -> None:
        self.codes[code] += 1
        log = service.output()
        if code != 0 or FATAL in log:
            self.unclean.append(f"run {run} ({sig.name}): exit {code}\n{log[-3000:]}")

    def check(self) -> None:
        clean = LOOPS - len(self.unclean)
        print(f"\n{self.command}: {clean} of {LOOPS} stops clean; exit codes {dict(self.codes)}")
        assert not self.unclean, "\n".join(self.unclean[:3])


async def stop(service: Service, sig: signal.Signals, grace: float = 60.0) -> int:
    """Send ``sig`` (SIGTERM or SIGINT) and return the exit code."""
    service.process.send_signal(sig)
    return await service.terminate(grace)


def running_script(service: Service) -> Callable[[], Awaitable[bool]]:
    """Whether the slow test script runs under ``service`` right now."""

    async def check() -> bool:
        try:
            children = psutil.Process(service.process.pid).children(recursive=True)
            return any("slow-collect" in " ".join(child.cmdline()) for child in children)
        except psutil.NoSuchProcess:
            return False

    return check


async def post_all(
    http: httpx.AsyncClient, account_id: str, fees: int, naive: int = 0
) -> list[asyncio.Task[httpx.Response]]:
    """Fee orders, naive fees (they sleep before they charge) and one slow script run."""
    calls = [
        http.post(f"/orders/{unique('ord')}/fee", json={"account_id": account_id, "amount": 1})
        for _ in range(fees)
    ]
    calls += [
        http.post(f"/naive/orders/{unique('nv')}/fee", json={"account_id": account_id, "amount": 1})
        for _ in range(naive)
    ]
    calls.append(http.post("/scripts/slow-collect/runs", json={"order_id": unique("pay")}))
    return [asyncio.create_task(call) for call in calls]


async def settle(tasks: list[asyncio.Task[httpx.Response]]) -> list[str]:
    """Every request's fate once the server stopped; only the API's own stop may cut one."""
    results = await asyncio.gather(*tasks, return_exceptions=True)
    return [repr(r) for r in results if not isinstance(r, httpx.Response)]


@pytest.fixture
async def account(tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """A SQLite ledger with one rich account: its URL and the account ID."""
    from superscript.ledger import Ledger

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    ledger = await Ledger.open(url)
    account_id = unique("acc")
    try:
        await ledger.create_account(account_id, 10**12)
    finally:
        await ledger.close()
    yield url, account_id


def stack_env(tmp_path: Path, temporal_address: str, url: str, port: int) -> dict[str, str]:
    return service_env(
        TEMPORAL_ADDRESS=temporal_address,
        SUPERSCRIPT_DATABASE_URL=url,
        SUPERSCRIPT_DATA_DIR=str(tmp_path),
        SUPERSCRIPT_TASK_QUEUE=unique("tq-stops"),
        SUPERSCRIPT_PORT=str(port),
        SUPERSCRIPT_SCRIPTS_DIR=str(scripts_dir(tmp_path)),
        SUPERSCRIPT_RESULT_WAIT_SECONDS="1",
        SUPERSCRIPT_NAIVE_DELAY="0.5-3.0",
    )


async def test_worker_stops_cleanly_every_time(
    tmp_path: Path, temporal_address: str, account: tuple[str, str]
) -> None:
    """N workers in turn, each stopped while it runs fee orders and a slow script."""
    url, account_id = account
    port = free_port()
    env = stack_env(tmp_path, temporal_address, url, port)
    base = f"http://127.0.0.1:{port}"
    api = start("api", ["api"], env, tmp_path)
    tally = Tally("worker")
    try:
        await wait_healthy(base, api)
        async with httpx.AsyncClient(base_url=base, timeout=120) as http:
            for run in range(LOOPS):
                sig = STOP_SIGNALS[run % 2]
                worker = start(f"worker-{run}", ["worker"], env, tmp_path)
                try:
                    await wait_for_log(worker, WORKER_READY, 90)
                    calls = await post_all(http, account_id, fees=20)
                    await wait_until(running_script(worker), "a script running", 60, worker)
                    tally.record(run, sig, worker, await stop(worker, sig))
                finally:
                    kill_tree(worker)
                await settle(calls)
    finally:
        kill_tree(api)
    tally.check()


async def test_api_stops_cleanly_every_time(
    tmp_path: Path, temporal_address: str, account: tuple[str, str]
) -> None:
    """N APIs in turn, each stopped with fee, naive-fee and script requests in flight."""
    url, account_id = account
    env = stack_env(tmp_path, temporal_address, url, free_port())
    worker = start("worker", ["worker"], env, tmp_path)
    tally = Tally("api")
    cut: list[str] = []
    try:
        await wait_for_log(worker, WORKER_READY, 90)
        for run in range(LOOPS):
            sig = STOP_SIGNALS[run % 2]
            port = free_port()
            api = start(f"api-{run}", ["api"], {**env, "SUPERSCRIPT_PORT": str(port)}, tmp_path)
            base = f"http://127.0.0.1:{port}"
            try:
                await wait_healthy(base, api)
                async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                    calls = await post_all(http, account_id, fees=10, naive=10)
                    await wait_until(running_script(worker), "a script running", 60, worker, api)
                    tally.record(run, sig, api, await stop(api, sig))
                    cut += await settle(calls)
            finally:
                kill_tree(api)
    finally:
        kill_tree(worker)
    tally.check()
    assert not cut, f"requests cut by a graceful stop: {cut[:5]}"


async def test_up_stops_cleanly_every_time(tmp_path: Path) -> None:
    """N ``superscript up`` on one data dir, each stopped with fees and a script in flight."""
    ports = {
        "SUPERSCRIPT_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_UI_PORT": str(free_port()),
    }
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(tmp_path / "data"),
        SUPERSCRIPT_SCRIPTS_DIR=str(scripts_dir(tmp_path)),
        SUPERSCRIPT_RESULT_WAIT_SECONDS="1",
        **ports,
    )
    base = f"http://127.0.0.1:{ports['SUPERSCRIPT_PORT']}"
    account_id = unique("acc")
    tally = Tally("up")
    for run in range(LOOPS):
        sig = STOP_SIGNALS[run % 2]
        up = start(f"up-{run}", ["up"], env, tmp_path)
        try:
            await wait_healthy(base, up)
            async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                if run == 0:
                    created = await http.post(
                        "/accounts", json={"account_id": account_id, "balance": 10**12}
                    )
                    assert created.status_code == 201, created.text
                calls = await post_all(http, account_id, fees=20)
                await wait_until(running_script(up), "a script running", 60, up)
                tally.record(run, sig, up, await stop(up, sig, grace=90))
                await settle(calls)
        finally:
            kill_tree(up)
    tally.check()


async def connect_when_serving(server: Service, port: int) -> Client:
    """A client of the dev server once its frontend answers (after its port opens)."""
    clients: list[Client] = []

    async def serving() -> bool:
        try:
            clients.append(await Client.connect(f"127.0.0.1:{port}"))
        except RuntimeError:  # "Frontend is not healthy yet"
            return False
        return True

    await wait_until(serving, "the dev server serving", 60, server, interval=0.2)
    return clients[0]


async def test_dev_server_stops_cleanly_every_time(tmp_path: Path) -> None:
    """N ``superscript dev-server`` on one data dir, each stopped with a client connected."""
    port, ui_port = free_port(), free_port()
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(tmp_path / "data"),
        SUPERSCRIPT_TEMPORAL_PORT=str(port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(ui_port),
    )
    tally = Tally("dev-server")
    for run in range(LOOPS):
        sig = STOP_SIGNALS[run % 2]
        server = start(f"dev-server-{run}", ["dev-server"], env, tmp_path)
        try:
            await wait_dev_server(server, port)
            client = await connect_when_serving(server, port)
            # A long poll in flight on the server when it is told to stop: no worker
            # serves this task queue, so the result never comes.
            handle = await client.start_workflow(
                "Nothing", id=unique("wf"), task_queue=unique("tq-none")
            )
            poll = asyncio.create_task(handle.result())
            tally.record(run, sig, server, await stop(server, sig))
            poll.cancel()  # the client would retry it for as long as the server is gone
            await asyncio.gather(poll, return_exceptions=True)
        finally:
            kill_tree(server)
    tally.check()
