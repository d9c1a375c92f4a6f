"""Prototype probe for issue #11 point 1 (not wired into bench.run yet): one fee call.

Starts ``superscript up`` (the given executable, so main and a branch can be compared) on
free ports in a temp dir and measures, against its embedded Temporal:

- floor: an empty workflow, started eagerly by a client whose worker is in this process;
- seed: a workflow with one regular no-op activity, no eager start (the seed's shape);
- fee p50: sequential ``POST /orders/{id}/fee``, one fresh order each;
- fee 64: 64 in flight, fresh orders, orders/s.

It also reads one fee workflow's history: whether the start was eager and whether the fee
ran as a local activity (a marker) or a regular one.

    nice .venv/bin/python -m bench.one_call --superscript .venv/bin/superscript
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import httpx
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

from bench.probe_workflows import EmptySandboxedWorkflow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@workflow.defn(name="ProbeEmptyWorkflow", sandboxed=False)
class EmptyWorkflow:
    @workflow.run
    async def run(self, item: int) -> int:
        return item


@activity.defn(name="probe_noop")
async def noop(item: int) -> int:
    return item


@workflow.defn(name="ProbeOneActivityWorkflow", sandboxed=False)
class OneActivityWorkflow:
    @workflow.run
    async def run(self, item: int) -> int:
        return await workflow.execute_activity(
            noop, item, start_to_close_timeout=timedelta(seconds=30)
        )


def p50_ms(seconds: list[float]) -> float:
    return statistics.median(seconds) * 1000


async def sequential(n: int, call: object) -> list[float]:
    times: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)  # type: ignore[operator]
        times.append(time.perf_counter() - started)
    return times


async def measure(base: str, temporal: str, n_seq: int, n_par: int, run: str) -> dict[str, object]:
    client = await Client.connect(temporal)
    queue = f"probe-{run}"
    result: dict[str, object] = {}
    async with Worker(
        client,
        task_queue=queue,
        workflows=[EmptyWorkflow, EmptySandboxedWorkflow, OneActivityWorkflow],
        activities=[noop],
    ):
        eager_flags: list[bool] = []

        async def empty(i: int) -> None:
            handle = await client.start_workflow(
                EmptyWorkflow.run,
                i,
                id=f"{run}-empty-{i}",
                task_queue=queue,
                request_eager_start=True,
            )
            eager_flags.append(bool(getattr(handle, "__temporal_eagerly_started", False)))
            await handle.result()

        async def seed(i: int) -> None:
            await client.execute_workflow(
                OneActivityWorkflow.run, i, id=f"{run}-seed-{i}", task_queue=queue
            )

        await sequential(5, lambda i: empty(1000 + i))
        result["floor_empty_eager_p50_ms"] = p50_ms(await sequential(n_seq, empty))
        result["floor_eagerly_started"] = sum(eager_flags[5:])

        async def empty_sandboxed(i: int) -> None:
            handle = await client.start_workflow(
                EmptySandboxedWorkflow.run,
                i,
                id=f"{run}-empty-sb-{i}",
                task_queue=queue,
                request_eager_start=True,
            )
            await handle.result()

        await sequential(5, lambda i: empty_sandboxed(1000 + i))
        result["floor_empty_eager_sandboxed_p50_ms"] = p50_ms(
            await sequential(n_seq, empty_sandboxed)
        )
        await sequential(5, lambda i: seed(1000 + i))
        result["seed_one_activity_p50_ms"] = p50_ms(await sequential(n_seq, seed))

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=base, timeout=120, limits=limits) as http:
        account = f"{run}-acc"
        made = await http.post("/accounts", json={"account_id": account, "balance": 10**12})
        assert made.status_code == 201, made.text
        codes: list[int] = []

        async def fee(tag: str, i: int) -> None:
            answer = await http.post(
                f"/orders/{run}-{tag}-{i}/fee", json={"account_id": account, "amount": 1}
            )
            codes.append(answer.status_code)

        await sequential(10, lambda i: fee("warm", i))
        result["fee_sequential_p50_ms"] = p50_ms(await sequential(n_seq, lambda i: fee("seq", i)))
        gate = asyncio.Semaphore(64)

        async def bounded(i: int) -> None:
            async with gate:
                await fee("par", i)

        started = time.perf_counter()
        await asyncio.gather(*(bounded(i) for i in range(n_par)))
        result["fee_64_in_flight_orders_per_s"] = n_par / (time.perf_counter() - started)
        result["fee_statuses"] = {str(c): codes.count(c) for c in sorted(set(codes))}

    history = await client.get_workflow_handle(f"FEE-WF-{run}-seq-0").fetch_history()
    started_attrs = history.events[0].workflow_execution_started_event_attributes
    kinds = [event.event_type for event in history.events]
    from temporalio.api.enums.v1 import EventType

    result["fee_history_eager_execution_accepted"] = started_attrs.eager_execution_accepted
    result["fee_history_markers"] = kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED)
    result["fee_history_activities_scheduled"] = kinds.count(
        EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )
    result["fee_history_events"] = len(kinds)
    return result


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--superscript", required=True)
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=640)
    args = parser.parse_args()
    run = uuid.uuid4().hex[:8]
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "SUPERSCRIPT_DATA_DIR": str(Path(tmp) / "data"),
            "SUPERSCRIPT_PORT": str(free_port()),
            "SUPERSCRIPT_TEMPORAL_PORT": str(free_port()),
            "SUPERSCRIPT_TEMPORAL_UI_PORT": str(free_port()),
        }
        env.pop("TEMPORAL_ADDRESS", None)
        log = (Path(tmp) / "up.log").open("wb")
        up = subprocess.Popen([args.superscript, "up"], env=env, stdout=log, stderr=log)  # noqa: ASYNC220
        base = f"http://127.0.0.1:{env['SUPERSCRIPT_PORT']}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                for _ in range(240):
                    try:
                        if (await probe.get("/healthz")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.5)
            load_before = os.getloadavg()
            result = await measure(
                base,
                f"127.0.0.1:{env['SUPERSCRIPT_TEMPORAL_PORT']}",
                args.sequential,
                args.parallel,
                run,
            )
            result["load_before_after"] = [round(load_before[0], 2), round(os.getloadavg()[0], 2)]
            result["superscript"] = args.superscript
            print(json.dumps(result, indent=2))
        finally:
            up.terminate()
            try:
                code = up.wait(90)
            except subprocess.TimeoutExpired:
                up.kill()
                code = up.wait()
            print(f"up exited {code}")
            if code != 0:
                print((Path(tmp) / "up.log").read_text()[-3000:])


if __name__ == "__main__":
    asyncio.run(main())
