"""The stack the bench measures: dev server, ``superscript worker`` and ``api``, the ledger.

Everything runs on free ports in a temp dir; every ID is prefixed with the run's ID, so a
shared database is fine. The processes are started and stopped by the shared harness,
:mod:`superscript.processes`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.probes import cpu_seconds
from bench.report import Report, console
from bench.sizes import Sizes
from bench.workflows import EmptyWorkflow, FeeFanoutWorkflow, NoopWorkflow, SeedFeeWorkflow, noop
from superscript.devserver import DevServer
from superscript.fees.activities import FeeActivities
from superscript.ledger import Ledger, schema
from superscript.processes import Service, check_alive, free_port, service_env, start, wait_healthy
from superscript.settings import Settings

# Plenty for every order of a run: amounts are 1 cent.
ACCOUNT_BALANCE = 10**13
HEALTH_TIMEOUT = 120.0
STOP_GRACE = 40.0


@dataclass
class Stack:
    """Dev server, worker and API processes, a Temporal client and the ledger."""

    tmp: Path
    settings: Settings
    run_id: str
    bench_queue: str
    server: DevServer
    services: dict[str, Service] = field(default_factory=dict)
    client: Client | None = None
    ledger: Ledger | None = None
    accounts: list[str] = field(default_factory=list)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.port}"

    @property
    def temporal_address(self) -> str:
        return f"127.0.0.1:{self.settings.temporal_port}"

    def env(self) -> dict[str, str]:
        """What configures the worker and the API: this stack's values, nothing inherited."""
        return service_env(
            TEMPORAL_ADDRESS=self.temporal_address,
            TEMPORAL_NAMESPACE="default",
            SUPERSCRIPT_HOST="127.0.0.1",
            SUPERSCRIPT_PORT=str(self.settings.port),
            SUPERSCRIPT_DATA_DIR=str(self.tmp),
            SUPERSCRIPT_DATABASE_URL=self.settings.database_url,
            SUPERSCRIPT_TASK_QUEUE=self.settings.task_queue,
            SUPERSCRIPT_TEMPORAL_PORT=str(self.settings.temporal_port),
            SUPERSCRIPT_TEMPORAL_UI_PORT=str(self.settings.temporal_ui_port),
        )

    def the_client(self) -> Client:
        assert self.client is not None
        return self.client

    def the_ledger(self) -> Ledger:
        assert self.ledger is not None
        return self.ledger

    def worker_pid(self) -> int:
        return self.services["worker"].process.pid

    def api_pid(self) -> int:
        return self.services["api"].process.pid

    def pids(self) -> dict[str, int]:
        found = {name: service.process.pid for name, service in self.services.items()}
        if self.server.process is not None:
            found["temporal"] = self.server.process.pid
        found["bench"] = os.getpid()
        return found

    @contextlib.asynccontextmanager
    async def cpu(self, report: Report, key: str) -> AsyncIterator[None]:
        """Add each process's CPU seconds and the wall time of the block to ``key``."""
        pids = self.pids()
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        started = time.perf_counter()
        try:
            yield
        finally:
            wall = time.perf_counter() - started
            used = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
            sums = report.cpu.setdefault(key, {})
            for name, seconds in {"wall": wall, **used}.items():
                sums[name] = sums.get(name, 0.0) + seconds

    def check_alive(self) -> None:
        """Raise, with its log, if the worker or the API has exited."""
        check_alive(*self.services.values())


def make_stack(database_url: str | None) -> Stack:
    tmp = Path(tempfile.mkdtemp(prefix="superscript-bench-"))
    run_id = uuid.uuid4().hex[:8]
    settings = Settings(
        data_dir=tmp,
        temporal_port=free_port(),
        temporal_ui_port=free_port(),
        port=free_port(),
        task_queue=f"bench-product-{run_id}",
        database_url=database_url or "",
    )
    return Stack(
        tmp=tmp,
        settings=settings,
        run_id=run_id,
        bench_queue=f"bench-raw-{run_id}",
        server=DevServer(settings),
    )


async def start_stack(stack: Stack, sizes: Sizes) -> None:
    console.print(f"[dim]temp dir {stack.tmp}, run {stack.run_id}[/dim]")
    await stack.server.start()
    stack.ledger = await Ledger.open(stack.settings.database_url)
    stack.accounts = [f"{stack.run_id}-acc-{i:04d}" for i in range(sizes.accounts)]
    async with stack.ledger.write() as conn:
        await conn.execute(
            schema.accounts.insert(),
            [
                {
                    "account_id": account,
                    "balance": ACCOUNT_BALANCE,
                    "opening_balance": ACCOUNT_BALANCE,
                }
                for account in stack.accounts
            ],
        )
    stack.client = await Client.connect(
        stack.temporal_address, namespace="default", data_converter=pydantic_data_converter
    )
    env = stack.env()
    worker = stack.services["worker"] = start("worker", ["worker"], env, stack.tmp)
    api = stack.services["api"] = start("api", ["api"], env, stack.tmp)
    await wait_healthy(stack.api_url, api, HEALTH_TIMEOUT, others=[worker])


def bench_worker(stack: Stack) -> Worker:
    """A worker inside the bench process, on a queue of its own, for ``bench/workflows.py``
    (the seed's fee activity on the bench's ledger, the same database as the product's)."""
    return Worker(
        stack.the_client(),
        task_queue=stack.bench_queue,
        workflows=[NoopWorkflow, FeeFanoutWorkflow, SeedFeeWorkflow, EmptyWorkflow],
        activities=[noop, FeeActivities(stack.the_ledger()).apply_fee],
        graceful_shutdown_timeout=dt.timedelta(seconds=2),
    )


async def stop_stack(stack: Stack) -> None:
    """Stop every process started here; one failing step does not skip the others."""
    # The API first: its waiting requests finish while the worker still runs.
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (name, functools.partial(service.stop, STOP_GRACE))
        for name, service in reversed(stack.services.items())
    ]
    steps.append(("temporal dev server", stack.server.stop))
    if stack.ledger is not None:
        steps.append(("ledger", stack.ledger.close))
    for name, step in steps:
        try:
            result = await step()
        except Exception as exc:
            console.print(f"[red]stopping {name} failed:[/red] {exc}")
            continue
        if isinstance(result, int) and result != 0:
            console.print(f"[yellow]{name} exited with {result}[/yellow]")
