"""SIGTERM to a worker, or to ``up``, while scripts and fee chunks run: the work in flight
finishes, every process exits in time, nothing is left behind or done twice.

The API's own SIGTERM is in ``test_shutdown_api``."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from superscript import runtime
from superscript.worker import GRACEFUL_SHUTDOWN
from tests.commands import api_url, script_running, start_serving, up_ports
from tests.conftest import NewStack, open_ledger, unique
from tests.leftovers import gone
from tests.processes import WORKER_READY, Service, kill_tree, service_env, wait_for_log, wait_until
from tests.script_files import payments_by_order, slow_scripts

# The slow script takes about a second: long enough to be caught running, short enough
# for a batch of them.
SCRIPT_SECONDS = 1


async def wait_completed(
    http: httpx.AsyncClient, batch_ids: list[str], *watched: Service
) -> list[dict[str, Any]]:
    """Until every one of the batches is completed: their statuses."""
    statuses: list[dict[str, Any]] = []

    async def completed() -> bool:
        statuses[:] = [(await http.get(f"/batches/{batch_id}")).json() for batch_id in batch_ids]
        return all(status["status"] == "completed" for status in statuses)

    await wait_until(completed, "the batches completed", 120, *watched)
    return statuses


async def submit_script_and_fee_batches(
    http: httpx.AsyncClient, script_items: list[dict[str, Any]], fee_items: list[dict[str, Any]]
) -> tuple[str, str]:
    """A slow-collect batch and a fee batch, both accepted: their IDs."""
    script_batch, fee_batch = unique("pay"), unique("fee")
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
    return script_batch, fee_batch


async def test_worker_sigterm_finishes_activities_in_flight(
    tmp_path: Path, new_sqlite_stack: NewStack, sqlite_url: str
) -> None:
    """SIGTERM to a worker running scripts and fee chunks: it finishes them and exits in time;
    the other worker does the rest; no key runs twice, no order is charged twice."""
    # The API hosts no worker: the two workers are the only ones, so the doomed one works.
    stack = new_sqlite_stack(
        SUPERSCRIPT_SCRIPTS_DIR=str(slow_scripts(tmp_path, SCRIPT_SECONDS)),
        SUPERSCRIPT_API_WORKER="false",
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
    stack.start_api()
    doomed = stack.start_worker()
    await stack.wait_ready()
    async with open_ledger(sqlite_url) as ledger:
        for account_id, balance in openings.items():
            await ledger.create_account(account_id, balance)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
        batch_ids = await submit_script_and_fee_batches(http, script_items, fee_items)
        # SIGTERM once the doomed worker runs scripts; then a second worker joins.
        running = script_running(doomed, "slow-collect")
        await wait_until(running, "scripts running on the worker", 60, doomed)
        stopping = time.monotonic()
        doomed.process.send_signal(signal.SIGTERM)
        survivor = stack.start_worker()
        code = await doomed.terminate(grace=GRACEFUL_SHUTDOWN.total_seconds() + 15)
        took = time.monotonic() - stopping
        await wait_for_log(survivor, WORKER_READY)
        statuses = await wait_completed(http, list(batch_ids), survivor)
    fee_status = next(s for s in statuses if s["kind"] == "fee")
    script_status = next(s for s in statuses if s["kind"] == "script")
    assert code == 0, doomed.output()
    assert took < GRACEFUL_SHUTDOWN.total_seconds() + 10, f"the worker took {took:.1f}s"
    assert fee_status["succeeded"] == 2_000 and fee_status["pending"] == 0, fee_status
    # The scripts the stopping worker ran were finished, not cut: every run succeeded.
    assert script_status["succeeded"] == 120, script_status
    runs = payments_by_order(tmp_path)
    assert all(runs[item["order_id"]] == 1 for item in script_items), runs
    assert sum(runs.values()) == 120
    async with open_ledger(sqlite_url) as ledger:
        for item in fee_items:
            assert await ledger.charges_for(str(item["order_id"])) == 1, item
        total = sum(openings.values())
        assert await ledger.invariant(accounts) == (total, total)
    assert set((await stack.stop()).values()) == {0}, stack.logs()


async def test_up_sigterm_stops_everything(tmp_path: Path) -> None:
    """SIGTERM to ``superscript up`` with scripts running: all of it exits, no orphan left."""
    data_dir = tmp_path / "data"
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_SCRIPTS_DIR=str(slow_scripts(tmp_path, SCRIPT_SECONDS)),
        **up_ports(),
    )
    up = await start_serving("up", ["up"], env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
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

        await wait_until(script_running(up, "slow-collect"), "scripts running under up", 60, up)
        family = psutil.Process(up.process.pid).children(recursive=True)
        assert any("temporal" in child.name() for child in family)
        stopping = time.monotonic()
        code = await up.terminate(grace=runtime.API_GRACEFUL_SHUTDOWN_SECONDS + 30)
        took = time.monotonic() - stopping
    finally:
        kill_tree(up)
    assert code == 0, up.output()
    assert took < GRACEFUL_SHUTDOWN.total_seconds() + 15, f"up took {took:.1f}s to stop"

    async def all_gone() -> bool:
        return all(gone(process) for process in family)

    await wait_until(all_gone, "every process of up gone", 10)
    db = str((data_dir / "temporal.db").resolve())
    orphans = [
        p for p in psutil.process_iter(["cmdline"]) if db in " ".join(p.info["cmdline"] or [])
    ]
    assert not [p for p in orphans if not gone(p) and p.pid != os.getpid()], orphans
    # The scripts in flight at SIGTERM finished: each ran once, none was cut.
    runs = payments_by_order(data_dir)
    assert all(count == 1 for count in runs.values()), runs
