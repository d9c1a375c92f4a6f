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
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client

from tests.commands import api_url, script_running, start_serving, up_ports
from tests.conftest import NewStack, open_ledger, unique
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
from tests.script_files import slow_scripts

LOOPS = int(os.environ.get("SUPERSCRIPT_STOP_LOOPS", "3"))
FATAL = "Fatal Python error"
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# The slow script pays slowly enough to be caught running.
SCRIPT_SECONDS = 3

pytestmark = [pytest.mark.slow, pytest.mark.timeout(max(300, LOOPS * 60))]


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
async def account(sqlite_url: str) -> str:
    """One rich account in the test's SQLite ledger."""
    account_id = unique("acc")
    async with open_ledger(sqlite_url) as ledger:
        await ledger.create_account(account_id, 10**12)
    return account_id


def stop_loop_env(tmp_path: Path) -> dict[str, str]:
    """What every stack here runs with: the slow script, and short waits for answers."""
    return {
        "SUPERSCRIPT_SCRIPTS_DIR": str(slow_scripts(tmp_path, SCRIPT_SECONDS)),
        "SUPERSCRIPT_RESULT_WAIT_SECONDS": "1",
    }


async def test_worker_stops_cleanly_every_time(
    tmp_path: Path, new_sqlite_stack: NewStack, account: str
) -> None:
    """N workers in turn, each stopped while it runs fee orders and a slow script.

    The API hosts no worker here: the work must land on the worker being stopped."""
    stack = new_sqlite_stack(
        **stop_loop_env(tmp_path), SUPERSCRIPT_NAIVE_DELAY="0.5-3.0", SUPERSCRIPT_API_WORKER="false"
    )
    tally = Tally("worker")
    await wait_healthy(stack.base_url, stack.start_api())
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=120) as http:
        for run in range(LOOPS):
            sig = STOP_SIGNALS[run % 2]
            worker = stack.start_worker()
            try:
                await wait_for_log(worker, WORKER_READY, 90)
                calls = await post_all(http, account, fees=20)
                running = script_running(worker, "slow-collect")
                await wait_until(running, "a script running", 60, worker)
                tally.record(run, sig, worker, await stop(worker, sig))
            finally:
                kill_tree(worker)
            await settle(calls)
    tally.check()


async def test_api_stops_cleanly_every_time(
    tmp_path: Path, new_sqlite_stack: NewStack, account: str
) -> None:
    """N APIs in turn, each stopped with fee, naive-fee and script requests in flight."""
    stack = new_sqlite_stack(**stop_loop_env(tmp_path), SUPERSCRIPT_NAIVE_DELAY="0.5-3.0")
    worker = stack.start_worker()
    tally = Tally("api")
    cut: list[str] = []
    await wait_for_log(worker, WORKER_READY, 90)
    for run in range(LOOPS):
        sig = STOP_SIGNALS[run % 2]
        env = {**stack.env, "SUPERSCRIPT_PORT": str(free_port())}
        api = start(f"api-{run}", ["api"], env, tmp_path)
        try:
            await wait_healthy(api_url(env), api)
            async with httpx.AsyncClient(base_url=api_url(env), timeout=120) as http:
                calls = await post_all(http, account, fees=10, naive=10)
                running = script_running(worker, "slow-collect")
                await wait_until(running, "a script running", 60, worker, api)
                tally.record(run, sig, api, await stop(api, sig))
                cut += await settle(calls)
        finally:
            kill_tree(api)
    tally.check()
    assert not cut, f"requests cut by a graceful stop: {cut[:5]}"


async def test_up_stops_cleanly_every_time(tmp_path: Path) -> None:
    """N ``superscript up`` on one data dir, each stopped with fees and a script in flight."""
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(tmp_path / "data"), **stop_loop_env(tmp_path), **up_ports()
    )
    account_id = unique("acc")
    tally = Tally("up")
    for run in range(LOOPS):
        sig = STOP_SIGNALS[run % 2]
        up = await start_serving(f"up-{run}", ["up"], env, tmp_path)
        try:
            async with httpx.AsyncClient(base_url=api_url(env), timeout=120) as http:
                if run == 0:
                    created = await http.post(
                        "/accounts", json={"account_id": account_id, "balance": 10**12}
                    )
                    assert created.status_code == 201, created.text
                calls = await post_all(http, account_id, fees=20)
                running = script_running(up, "slow-collect")
                await wait_until(running, "a script running", 60, up)
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
    env = service_env(SUPERSCRIPT_DATA_DIR=str(tmp_path / "data"), **up_ports())
    port = int(env["SUPERSCRIPT_TEMPORAL_PORT"])
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
