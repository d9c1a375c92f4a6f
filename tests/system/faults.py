"""The faults the fault tests make: a dev server stopped and started again, a stack on it,
and workers killed at seeded points of the work's progress; and what shows it recovered."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import func, select
from temporalio.api.enums.v1 import TaskQueueKind, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from superscript.ledger import Ledger
from superscript.ledger.schema import entries
from tests.conftest import unique
from tests.processes import (
    Service,
    Stack,
    free_port,
    start_dev_server,
    wait_dev_server,
    wait_until,
)

# --- the processes -------------------------------------------------------------------


@dataclass
class Temporal:
    """``superscript dev-server`` on fixed ports and data dir, so it can be restarted."""

    log_dir: Path
    data_dir: Path
    port: int = field(default_factory=free_port)
    ui_port: int = field(default_factory=free_port)
    service: Service | None = None
    starts: int = 0

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> Service:
        self.starts += 1
        self.service = start_dev_server(
            f"temporal-{self.starts}", self.data_dir, self.port, self.ui_port, self.log_dir
        )
        await wait_dev_server(self.service, self.port)
        return self.service

    async def stop(self) -> int:
        assert self.service is not None
        return await self.service.terminate(30)


@asynccontextmanager
async def running_stack(
    log_dir: Path, temporal: Temporal, database_url: str, workers: int = 2
) -> AsyncIterator[Stack]:
    stack = Stack.configure(
        log_dir,
        temporal_address=temporal.address,
        database_url=database_url,
        data_dir=log_dir / "data",
        task_queue=unique("tq-faults"),
        # Only the API: the workers killed here must be the ones doing the work. (The API's
        # own worker, the eager path, is killed in test_commands.)
        SUPERSCRIPT_API_WORKER="false",
    )
    try:
        stack.start_api()
        for _ in range(workers):
            stack.start_worker()
        await stack.wait_ready()
        yield stack
    finally:
        stack.kill_all()


def api_of(stack: Stack) -> list[Service]:
    assert stack.api is not None
    return [stack.api]


def http_client(stack: Stack, connections: int = 50) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(base_url=stack.base_url, timeout=90, limits=limits)


# --- killing workers at random points -------------------------------------------------


async def kill_workers_during(
    stack: Stack,
    rng: random.Random,
    kills: int,
    total: int,
    progress: Callable[[], Awaitable[int]],
    seconds: float = 120.0,
) -> int:
    """SIGKILL a worker (the two in turn) as progress passes each of ``kills`` seeded random
    points of the first 70% of ``total``, starting a fresh worker in its place at once.

    Points are placed by progress, not by time, so they fall inside the work however fast
    the machine is; returns how many kills happened before the work was all done.
    """
    points = sorted(rng.sample(range(1, max(2, total * 7 // 10)), kills))
    killed = 0
    deadline = time.monotonic() + seconds
    while points:
        done = await progress()
        if done >= total:
            break
        if done >= points[0]:
            points.pop(0)
            await asyncio.sleep(rng.uniform(0, 0.2))
            stack.replace_worker(killed % 2)
            killed += 1
        assert time.monotonic() < deadline, f"no progress past {done} of {total}"
        await asyncio.sleep(0.05)
    return killed


CHUNK_FREEZE = "fee-chunk-after-commit"


def arm_workers(stack: Stack, marker_dir: Path) -> dict[str, str]:
    """Replace every worker by one armed with :data:`CHUNK_FREEZE`; the arming environment.

    Done before the batch is submitted, so no chunk can reach an unarmed worker.
    """
    armed = {"SUPERSCRIPT_FAILPOINTS": CHUNK_FREEZE, "SUPERSCRIPT_FAILPOINT_DIR": str(marker_dir)}
    for slot in range(len(stack.workers)):
        stack.replace_worker(slot, armed)
    return armed


async def kill_frozen_workers(
    stack: Stack, kills: int, armed: dict[str, str], seconds: float = 180.0
) -> int:
    """Exactly ``kills`` SIGKILLs, each of a worker frozen right after a fee chunk committed.

    Armed workers (:func:`arm_workers`) add their pid to the marker as they freeze; each
    frozen one is killed and replaced at once by a fresh armed worker until the kills are
    done. Every worker stays armed until then, so every chunk (or retry of one) that
    commits freezes its worker and the next freeze always comes. Then the armed workers
    left are replaced by unarmed ones, so the batch can end. Temporal never hears of the
    frozen chunks' completion: each kill is followed by a retry that must find its chunk
    decided. The kills follow the freezes, not the clock.
    """
    marker = Path(armed["SUPERSCRIPT_FAILPOINT_DIR"]) / f"{CHUNK_FREEZE}.hit"
    killed, seen, armed_slots = 0, set[int](), set(range(len(stack.workers)))

    async def frozen() -> bool:
        return marker.exists() and bool(set(_pids(marker)) - seen)

    while killed < kills:
        await wait_until(
            frozen, f"a worker frozen after a chunk ({killed} killed)", seconds, *stack.workers
        )
        for pid in sorted(set(_pids(marker)) - seen)[: kills - killed]:
            seen.add(pid)
            slot = next(n for n, w in enumerate(stack.workers) if w.process.pid == pid)
            killed += 1
            if killed == kills:
                armed_slots.discard(slot)
            stack.replace_worker(slot, armed if killed < kills else None)
    # The armed workers left (frozen or not) give way to unarmed ones, so the batch ends.
    for slot in sorted(armed_slots):
        stack.replace_worker(slot)
    return killed


def _pids(marker: Path) -> list[int]:
    return [int(line) for line in marker.read_text().split()]


def journal_entries(books: Ledger, accounts: list[str]) -> Callable[[], Awaitable[int]]:
    """Progress of fee orders on ``accounts``: how many journal entries they have so far."""

    async def count() -> int:
        async with books.engine.connect() as conn:
            found = await conn.scalar(
                select(func.count()).select_from(entries).where(entries.c.account_id.in_(accounts))
            )
        return int(found or 0)

    return count


# --- the task queue's pollers ------------------------------------------------------


async def pollers(client: Client, task_queue: str, kind: TaskQueueType.ValueType) -> set[str]:
    described = await client.workflow_service.describe_task_queue(
        DescribeTaskQueueRequest(
            namespace="default",
            task_queue=TaskQueue(name=task_queue, kind=TaskQueueKind.TASK_QUEUE_KIND_NORMAL),
            task_queue_type=kind,
        )
    )
    return {poller.identity.split("@")[0] for poller in described.pollers}


async def wait_polling(client: Client, task_queue: str, workers: list[Service]) -> None:
    """Until every one of ``workers`` polls ``task_queue``, for workflow and activity tasks."""
    pids = {str(worker.process.pid) for worker in workers}

    async def all_polling() -> bool:
        workflow_pollers = await pollers(client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
        activity_pollers = await pollers(client, task_queue, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
        return pids <= workflow_pollers and pids <= activity_pollers

    await wait_until(all_polling, "both workers polling the restarted server", 60, *workers)
