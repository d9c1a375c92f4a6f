"""(s) a script batch of a trivial script, against the bare runner doing the same runs.

The bare runner is ``run_script`` itself in this process: the same script, as many runs,
``SCRIPT_SLOTS`` at once (the worker's bound for script chunks), no Temporal and no ledger.
The batch is ``POST /batches`` kind script (the default orchestrator) until GET says it
completed. Issue #11 asks for the batch at >= 0.5 x the bare runner.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from bench.report import Report, Row, at_least, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from superscript.batches.activities import SCRIPT_GROUP, SCRIPT_SLOTS
from superscript.batches.client import SCRIPT_KEYS_CHUNK_SIZE, WINDOW
from superscript.contract import BUNDLED_SCRIPTS_DIR
from superscript.scripts import Registry, run_script

SCRIPT = "echo-args"  # bundled: prints its args (none here) and exits 0
GOAL = 0.5


async def bare_runner(stack: Stack, runs: int, slots: int) -> float:
    """Seconds for ``runs`` runs of the script through ``run_script``, ``slots`` at once."""
    spec = Registry(BUNDLED_SCRIPTS_DIR).get(SCRIPT)
    gate = asyncio.Semaphore(slots)
    env = {"SUPERSCRIPT_DATA_DIR": str(stack.tmp)}

    async def one(index: int) -> None:
        async with gate:
            result = await run_script(
                spec, [], order_id=f"{stack.run_id}-bare-{index}", attempt=1, extra_env=env
            )
        if result.exit_code != 0:
            raise RuntimeError(f"{SCRIPT} exited {result.exit_code}: {result.stderr[-500:]}")

    started = time.perf_counter()
    await asyncio.gather(*(one(index) for index in range(runs)))
    return time.perf_counter() - started


def script_batch_body(stack: Stack, batch_id: str, tag: str, n: int) -> bytes:
    prefix = f"{stack.run_id}-{tag}-"
    items = ",".join(f'{{"order_id":"{prefix}{i}","args":[]}}' for i in range(n))
    body = f'{{"batch_id":"{batch_id}","kind":"script","script":"{SCRIPT}","items":[{items}]}}'
    return body.encode()


async def script_batch(
    stack: Stack, http: httpx.AsyncClient, tag: str, n: int, deadline_s: float
) -> tuple[float, dict[str, Any]]:
    """Seconds from POST to completed for a batch of ``n`` fresh keys; its final status."""
    batch_id = f"{stack.run_id}-scripts-{tag}"
    started = time.perf_counter()
    response = await http.post(
        "/batches",
        content=script_batch_body(stack, batch_id, tag, n),
        headers={"content-type": "application/json"},
    )
    if response.status_code != 202:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text[:500]}")
    while True:
        stack.check_alive()
        status = await http.get(f"/batches/{batch_id}")
        final: dict[str, Any] = status.json()
        if status.status_code == 200 and final["status"] == "completed":
            return time.perf_counter() - started, final
        if time.perf_counter() - started > deadline_s:
            raise TimeoutError(f"batch {batch_id} not completed in {deadline_s:.0f}s: {final}")
        await asyncio.sleep(0.1)


async def measure_script_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(s) a script batch of a trivial script, against the bare runner (same runs, slots)."""
    n = sizes.script_batch
    await bare_runner(stack, sizes.warmup, SCRIPT_SLOTS)
    bare_seconds = await bare_runner(stack, n, SCRIPT_SLOTS)
    bare_rate = n / bare_seconds
    report.add(
        Row(
            "s_bare",
            f"(s') bare runner: {n:,} runs of {SCRIPT}, {SCRIPT_SLOTS} at once",
            bare_rate,
            "runs/s",
        )
    )
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=600) as http:
        await script_batch(stack, http, "s-warm", sizes.warmup, 60)
        async with stack.cpu(report, "s"):
            seconds, final = await script_batch(stack, http, "s", n, sizes.batch_deadline_s)
    rate = n / seconds
    report.figures["s"] = {
        "items": n,
        "seconds": seconds,
        "items_per_s": rate,
        "bare_seconds": bare_seconds,
        "bare_runs_per_s": bare_rate,
        "slots": SCRIPT_SLOTS,
        "group": SCRIPT_GROUP,
        "chunk_size": SCRIPT_KEYS_CHUNK_SIZE,
        "window": WINDOW,
        "final": final,
    }
    share = ratio(rate, bare_rate)
    note = None if final.get("succeeded") == n else f"succeeded {final.get('succeeded')} of {n}"
    report.add(
        Row(
            "s",
            f"(s) script batch, {n:,} items of {SCRIPT}",
            rate,
            "items/s",
            "(s)/(s')",
            share,
            f">= {GOAL}",
            at_least(share, GOAL) and note is None,
            note,
        )
    )
