"""SuperScript's speed, measured on one embedded stack in one run.

``python -m bench.run [--quick] [--database-url URL] [--out bench/results/latest.json]``

Starts the embedded Temporal dev server (WAL pragmas), ``superscript worker`` and
``superscript api`` as real processes on free ports in a temp dir, then measures:

(a) raw Temporal: a no-op one-activity workflow per item (worker inside this process);
(b) the idempotent fee API, one unique order per call;
(c) the seed's design: one child ``FeeDeductionWorkflow`` per order under one parent;
(d) the fee batch (``POST /batches`` to completed);
(e) the ledger alone applying as many fresh orders in batch-sized chunks, no Temporal;
(f) a duplicate storm: 1,000 concurrent calls over 100 order IDs, against 100 unique calls;
(g) a 1,000,000-order fee batch (100,000 with ``--quick``) and the worker's peak RSS.

Every process started here is stopped on the way out, also on Ctrl-C, SIGTERM or error.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import json
import math
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psutil
from rich.console import Console
from rich.table import Table
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from bench.workflows import FanoutInput, FeeFanoutWorkflow, NoopInput, NoopWorkflow, noop
from superscript.batches.client import FEE_CHUNK_SIZE, WINDOW
from superscript.batches.models import FeeItem, ScriptItem
from superscript.batches.store import BatchStore
from superscript.devserver import DevServer
from superscript.ledger import Decider, FeeOrder, Ledger, schema
from superscript.settings import Settings

T = TypeVar("T")

REPO = Path(__file__).resolve().parents[1]
SUPERSCRIPT = Path(sys.executable).parent / "superscript"
DEFAULT_OUT = Path("bench/results/latest.json")
MIB = 1024 * 1024
GIB = 1024 * MIB
# Plenty for every order of a run: amounts are 1 cent.
ACCOUNT_BALANCE = 10**13
HEALTH_TIMEOUT = 120.0
STOP_GRACE = 40.0
RSS_INTERVAL = 0.25

# Wide enough for the table when the output goes to a file.
console = Console() if sys.stdout.isatty() else Console(width=200)


# Sizes -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    raw: int  # (a) workflows
    api: int  # (b) calls
    children: int  # (c) child workflows
    batch: int  # (d) and (e) orders
    big_batch: int  # (g) orders
    storm_calls: int = 1_000  # (f)
    storm_orders: int = 100  # (f)
    concurrency: int = 64  # (a), (b), and the window of (c)
    accounts: int = 1_000
    warmup: int = 20  # per measurement, not timed
    batch_deadline_s: float = 300.0  # (d)
    big_deadline_s: float = 1_200.0  # (g)


FULL = Sizes(raw=2_000, api=2_000, children=2_000, batch=20_000, big_batch=1_000_000)
QUICK = Sizes(raw=200, api=200, children=200, batch=2_000, big_batch=100_000, big_deadline_s=600.0)


# Results ---------------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    measurement: str
    value: float | None
    unit: str
    ratio_name: str | None = None
    ratio: float | None = None
    goal: str | None = None
    reached: bool | None = None
    note: str | None = None


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    # CPU seconds per process (and the wall time) of each timed section.
    cpu: dict[str, dict[str, float]] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)

    def value(self, key: str) -> float | None:
        for row in self.rows:
            if row.key == key:
                return row.value
        return None


def ratio(top: float | None, bottom: float | None) -> float | None:
    if top is None or bottom is None or bottom == 0:
        return None
    return top / bottom


def at_least(value: float | None, target: float) -> bool:
    return value is not None and value >= target


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest rank: the smallest value with at least ``pct`` percent at or below it."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


# Processes -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Service:
    """One ``superscript`` process and its log."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 30) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after the grace period; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                break
            await asyncio.sleep(0.05)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=10)
        return self.process.returncode


def start_service(name: str, env: dict[str, str], workdir: Path) -> Service:
    log = workdir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(SUPERSCRIPT), name],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
        )
    return Service(name=name, process=process, log=log)


def raise_fd_limit() -> None:
    """1,000 concurrent connections need 1,000 descriptors here and as many in the API."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8_192 if hard == resource.RLIM_INFINITY else min(hard, 8_192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


class PeakRss(threading.Thread):
    """Samples a process tree's resident memory (the process and all its children)."""

    def __init__(self, pid: int, interval: float = RSS_INTERVAL) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop_event = threading.Event()

    def sample(self) -> int:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for proc in tree:
            with contextlib.suppress(psutil.Error):
                total += proc.memory_info().rss
        return total

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, self.sample())
            self.samples += 1
            if self._stop_event.wait(self.interval):
                return

    def finish(self) -> int:
        self._stop_event.set()
        self.join(timeout=5)
        self.peak = max(self.peak, self.sample())
        return self.peak


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (0 once it is gone)."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return 0.0
    return float(times.user + times.system)


# The stack -------------------------------------------------------------------------------


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

    def service_env(self) -> dict[str, str]:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SUPERSCRIPT_", "TEMPORAL_"))
        }
        env.update(
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
        return env

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
        for service in self.services.values():
            if service.process.poll() is not None:
                raise RuntimeError(
                    f"{service.name} exited with {service.process.returncode}:\n{service.tail()}"
                )


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
    env = stack.service_env()
    stack.services["worker"] = start_service("worker", env, stack.tmp)
    stack.services["api"] = start_service("api", env, stack.tmp)
    await wait_healthy(stack)


async def wait_healthy(stack: Stack) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=5) as http:
        while True:
            stack.check_alive()
            with contextlib.suppress(httpx.TransportError):
                if (await http.get("/healthz")).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise TimeoutError(f"the API was not healthy in {HEALTH_TIMEOUT}s")
            await asyncio.sleep(0.1)


async def stop_stack(stack: Stack) -> None:
    """Stop every process started here; one failing step does not skip the others."""
    # The API first: its waiting requests finish while the worker still runs.
    steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
        (name, service.stop) for name, service in reversed(stack.services.items())
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


# Measurements ----------------------------------------------------------------------------


async def bounded(n: int, concurrency: int, call: Callable[[int], Awaitable[T]]) -> list[T]:
    """``call(0..n-1)`` with at most ``concurrency`` in flight."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> T:
        async with gate:
            return await call(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


def order(stack: Stack, tag: str, i: int) -> FeeOrder:
    return FeeOrder(
        order_id=f"{stack.run_id}-{tag}-{i}",
        account_id=stack.accounts[i % len(stack.accounts)],
        amount=1,
    )


def fee_batch_body(stack: Stack, batch_id: str, tag: str, n: int) -> bytes:
    """The JSON of a fee batch, built as bytes directly (a million items in about a second)."""
    accounts = stack.accounts
    count = len(accounts)
    prefix = f"{stack.run_id}-{tag}-"
    items = ",".join(
        f'{{"order_id":"{prefix}{i}","account_id":"{accounts[i % count]}","amount":1}}'
        for i in range(n)
    )
    return f'{{"batch_id":"{batch_id}","kind":"fee","items":[{items}]}}'.encode()


# (a) and (b) alternate in this many rounds each: the dev server slows down as its database
# fills, so whichever ran second paid more (one run: (a) first, (b)/(a) = 0.71; (b) first,
# (b)/(a) = 1.02). Alternating, both meet the server in the same states.
AB_ROUNDS = 4


async def measure_raw_and_api(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(a) and (b) in alternating rounds: a no-op workflow per item, one fee call per order."""
    client = stack.the_client()
    limits = httpx.Limits(
        max_connections=sizes.concurrency, max_keepalive_connections=sizes.concurrency
    )
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits) as http:

        async def raw(tag: str, i: int) -> int:
            return await client.execute_workflow(
                NoopWorkflow.run,
                NoopInput(item=i),
                id=f"{stack.run_id}-noop-{tag}-{i}",
                task_queue=stack.bench_queue,
            )

        async def api(tag: str, i: int) -> int:
            fee = order(stack, tag, i)
            response = await http.post(
                f"/orders/{fee.order_id}/fee",
                json={"account_id": fee.account_id, "amount": fee.amount},
            )
            return response.status_code

        await bounded(sizes.warmup, sizes.concurrency, lambda i: raw("warm", i))
        await bounded(sizes.warmup, sizes.concurrency, lambda i: api("b-warm", i))
        raw_seconds = api_seconds = 0.0
        codes: list[int] = []
        for round_ in range(AB_ROUNDS):
            raw_n = share_of(sizes.raw, round_)
            api_n = share_of(sizes.api, round_)
            async with stack.cpu(report, "a"):
                started = time.perf_counter()
                await bounded(raw_n, sizes.concurrency, functools.partial(raw, f"r{round_}"))
                raw_seconds += time.perf_counter() - started
            async with stack.cpu(report, "b"):
                started = time.perf_counter()
                codes += await bounded(
                    api_n, sizes.concurrency, functools.partial(api, f"b{round_}")
                )
                api_seconds += time.perf_counter() - started

    raw_rate = sizes.raw / raw_seconds
    report.figures["a"] = {
        "items": sizes.raw,
        "rounds": AB_ROUNDS,
        "seconds": raw_seconds,
        "items_per_s": raw_rate,
    }
    report.add(Row("a", "(a) raw Temporal: no-op one-activity workflow", raw_rate, "items/s"))

    statuses = Counter(codes)
    rate = sizes.api / api_seconds
    report.figures["b"] = {
        "orders": sizes.api,
        "rounds": AB_ROUNDS,
        "seconds": api_seconds,
        "orders_per_s": rate,
        "statuses": {str(code): n for code, n in statuses.items()},
    }
    share = ratio(rate, raw_rate)
    note = None if statuses == Counter({200: sizes.api}) else f"statuses {dict(statuses)}"
    report.add(
        Row(
            "b",
            "(b) idempotent fee API, unique orders",
            rate,
            "orders/s",
            "(b)/(a)",
            share,
            ">= 0.8",
            at_least(share, 0.8),
            note,
        )
    )


def share_of(total: int, round_: int) -> int:
    """Round ``round_``'s part of ``total`` items; the parts add up to ``total``."""
    return total * (round_ + 1) // AB_ROUNDS - total * round_ // AB_ROUNDS


async def run_fanout(stack: Stack, sizes: Sizes, tag: str, n: int) -> int:
    orders = [order(stack, tag, i) for i in range(n)]
    result = await stack.the_client().execute_workflow(
        FeeFanoutWorkflow.run,
        FanoutInput(orders=orders, task_queue=stack.settings.task_queue, window=sizes.concurrency),
        id=f"{stack.run_id}-fanout-{tag}",
        task_queue=stack.bench_queue,
    )
    return result.charged


async def measure_children(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(c) one parent starting one child FeeDeductionWorkflow per order, bounded window."""
    await run_fanout(stack, sizes, "c-warm", sizes.warmup)
    async with stack.cpu(report, "c"):
        started = time.perf_counter()
        charged = await run_fanout(stack, sizes, "c", sizes.children)
        elapsed = time.perf_counter() - started
    rate = sizes.children / elapsed
    report.figures["c"] = {
        "orders": sizes.children,
        "window": sizes.concurrency,
        "seconds": elapsed,
        "orders_per_s": rate,
        "charged": charged,
    }
    note = None if charged == sizes.children else f"only {charged} charged"
    report.add(
        Row(
            "c",
            "(c) seed design: child FeeDeductionWorkflow per order",
            rate,
            "orders/s",
            note=note,
        )
    )


@dataclass
class BatchRun:
    post_seconds: float
    total_seconds: float
    final: dict[str, Any]
    polls: int

    def figures(self, orders: int) -> dict[str, Any]:
        """The figures (d) and (g) both report for a batch of ``orders``."""
        return {
            "orders": orders,
            "seconds": self.total_seconds,
            "post_seconds": self.post_seconds,
            "orders_per_s": orders / self.total_seconds,
            "processing_orders_per_s": orders / (self.total_seconds - self.post_seconds),
            "final": self.final,
        }


async def run_batch(
    stack: Stack, http: httpx.AsyncClient, tag: str, n: int, poll: float, deadline_s: float
) -> BatchRun:
    """POST a fee batch of ``n`` fresh orders; the time until GET says it completed."""
    batch_id = f"{stack.run_id}-batch-{tag}"
    body = fee_batch_body(stack, batch_id, tag, n)
    started = time.perf_counter()
    response = await http.post(
        "/batches", content=body, headers={"content-type": "application/json"}
    )
    posted = time.perf_counter()
    if response.status_code != 202:
        raise RuntimeError(f"POST /batches answered {response.status_code}: {response.text[:500]}")
    del body
    polls = 0
    while True:
        stack.check_alive()
        status = await http.get(f"/batches/{batch_id}")
        polls += 1
        final: dict[str, Any] = status.json()
        if status.status_code == 200 and final["status"] == "completed":
            return BatchRun(posted - started, time.perf_counter() - started, final, polls)
        if time.perf_counter() - started > deadline_s:
            raise TimeoutError(f"batch {batch_id} not completed in {deadline_s:.0f}s: {final}")
        await asyncio.sleep(poll)


async def measure_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(d) POST /batches kind fee with fresh orders, until GET /batches/{id} says completed."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=600) as http:
        await run_batch(stack, http, "d-warm", sizes.warmup, 0.05, 60)
        async with stack.cpu(report, "d"):
            run = await run_batch(stack, http, "d", sizes.batch, 0.05, sizes.batch_deadline_s)
    rate = sizes.batch / run.total_seconds
    report.figures["d"] = {
        **run.figures(sizes.batch),
        "chunk_size": FEE_CHUNK_SIZE,
        "window": WINDOW,
    }
    share = ratio(rate, report.value("c"))
    note = f"POST {run.post_seconds:.2f}s"
    if run.final.get("succeeded") != sizes.batch:
        note += f"; succeeded {run.final.get('succeeded')} of {sizes.batch}"
    report.add(
        Row(
            "d",
            f"(d) fee batch, {sizes.batch:,} orders",
            rate,
            "orders/s",
            "(d)/(c)",
            share,
            ">= 30",
            at_least(share, 30),
            note,
        )
    )


async def measure_ledger(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(e) Ledger.apply_fees on fresh orders, FEE_CHUNK_SIZE per call, WINDOW calls at once."""
    ledger = stack.the_ledger()
    orders = [order(stack, "e", i) for i in range(sizes.batch)]
    chunks = [orders[i : i + FEE_CHUNK_SIZE] for i in range(0, len(orders), FEE_CHUNK_SIZE)]
    decider = Decider(workflow_id=f"bench-ledger-{stack.run_id}")
    await ledger.apply_fees([order(stack, "e-warm", i) for i in range(sizes.warmup)], decider)
    async with stack.cpu(report, "e"):
        started = time.perf_counter()
        applied = await bounded(
            len(chunks), WINDOW, lambda i: ledger.apply_fees(chunks[i], decider)
        )
        elapsed = time.perf_counter() - started
    charged = sum(
        1 for part in applied for one in part if one.applied and one.outcome.status == "charged"
    )
    rate = sizes.batch / elapsed
    report.figures["e"] = {
        "orders": sizes.batch,
        "seconds": elapsed,
        "orders_per_s": rate,
        "chunk_size": FEE_CHUNK_SIZE,
        "chunks_in_flight": WINDOW,
        "charged": charged,
    }
    share = ratio(report.value("d"), rate)
    note = None if charged == sizes.batch else f"only {charged} charged"
    report.add(
        Row(
            "e",
            "(e) ledger alone, same orders, no Temporal",
            rate,
            "orders/s",
            "(d)/(e)",
            share,
            ">= 0.5",
            at_least(share, 0.5),
            note,
        )
    )
    await measure_batch_store(stack, sizes, report)


async def measure_batch_store(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(e') Info, to split (d): the batch store's own work, no HTTP and no Temporal.

    ``BatchStore.create`` (what POST /batches stores) and ``apply_fee_chunk`` over the same
    chunks with the same window as the batch workflow, called directly.
    """
    store = BatchStore(stack.the_ledger())
    batch_id = f"{stack.run_id}-store-e"
    items: list[FeeItem | ScriptItem] = [
        FeeItem(order_id=fee.order_id, account_id=fee.account_id, amount=fee.amount)
        for fee in (order(stack, "es", i) for i in range(sizes.batch))
    ]
    bounds = [
        (start, min(start + FEE_CHUNK_SIZE, sizes.batch))
        for start in range(0, sizes.batch, FEE_CHUNK_SIZE)
    ]
    decider = Decider(workflow_id=f"bench-store-{stack.run_id}")
    async with stack.cpu(report, "e_store"):
        started = time.perf_counter()
        await store.create(batch_id, "fee", None, items)
        created = time.perf_counter()
        counts = await bounded(
            len(bounds),
            WINDOW,
            lambda i: store.apply_fee_chunk(batch_id, bounds[i][0], bounds[i][1], decider),
        )
        applied = time.perf_counter()
    succeeded = sum(part.succeeded for part in counts)
    chunk_rate = sizes.batch / (applied - created)
    report.figures["e_store"] = {
        "orders": sizes.batch,
        "create_seconds": created - started,
        "chunks_seconds": applied - created,
        "chunks_orders_per_s": chunk_rate,
        "orders_per_s": sizes.batch / (applied - started),
        "succeeded": succeeded,
    }
    note = f"create {created - started:.2f}s + chunks {applied - created:.2f}s"
    if succeeded != sizes.batch:
        note += f"; succeeded {succeeded} of {sizes.batch}"
    report.add(
        Row(
            "e_store",
            "(e') info: batch store alone (create + chunks), no HTTP/Temporal",
            sizes.batch / (applied - started),
            "orders/s",
            "(d)/(e')",
            ratio(report.value("d"), sizes.batch / (applied - started)),
            note=note,
        )
    )


@dataclass
class Burst:
    latencies: list[float]
    statuses: Counter[int]
    bodies: dict[str, set[str]]


# Connections per httpx client in a burst: httpx's pool does work in proportion to its
# connections on every request, so one client of 1,000 connections costs the bench more
# CPU than the API it measures. Shards of 50 keep the client side cheap.
BURST_SHARD = 50


async def burst(stack: Stack, orders: Sequence[FeeOrder], report: Report, key: str) -> Burst:
    """All calls released together by a barrier; each one's latency from the release."""
    calls = len(orders)
    shards = max(1, math.ceil(calls / BURST_SHARD))
    limits = httpx.Limits(max_connections=BURST_SHARD + 10, max_keepalive_connections=0)
    barrier = asyncio.Barrier(calls)
    result = Burst([], Counter(), {})
    async with contextlib.AsyncExitStack() as exits:
        clients = [
            await exits.enter_async_context(
                httpx.AsyncClient(base_url=stack.api_url, timeout=120, limits=limits)
            )
            for _ in range(shards)
        ]

        async def call(i: int, fee: FeeOrder) -> None:
            http = clients[i % shards]
            await barrier.wait()
            started = time.perf_counter()
            response = await http.post(
                f"/orders/{fee.order_id}/fee",
                json={"account_id": fee.account_id, "amount": fee.amount},
            )
            result.latencies.append(time.perf_counter() - started)
            result.statuses[response.status_code] += 1
            result.bodies.setdefault(fee.order_id, set()).add(response.text)

        async with stack.cpu(report, key):
            await asyncio.gather(*(call(i, fee) for i, fee in enumerate(orders)))
    report.figures[f"{key}_clients"] = {"clients": shards, "connections_each": BURST_SHARD}
    return result


async def measure_storm(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(f) 1,000 concurrent calls over 100 order IDs, against 100 concurrent unique calls."""
    ledger = stack.the_ledger()
    unique_orders = [order(stack, "f-unique", i) for i in range(sizes.storm_orders)]
    storm_ids = [order(stack, "f-storm", i) for i in range(sizes.storm_orders)]
    storm_orders = [storm_ids[i % len(storm_ids)] for i in range(sizes.storm_calls)]
    unique = await burst(stack, unique_orders, report, "f_unique")
    storm = await burst(stack, storm_orders, report, "f_storm")
    charges = [await ledger.charges_for(fee.order_id) for fee in storm_ids]
    total = sum(charges)
    differing = sum(1 for bodies in storm.bodies.values() if len(bodies) != 1)
    u50, u99 = percentile(unique.latencies, 50) * 1000, percentile(unique.latencies, 99) * 1000
    s50, s99 = percentile(storm.latencies, 50) * 1000, percentile(storm.latencies, 99) * 1000
    report.figures["f"] = {
        "calls": sizes.storm_calls,
        "order_ids": sizes.storm_orders,
        "charges": total,
        "orders_not_charged_once": sum(1 for c in charges if c != 1),
        "orders_with_differing_bodies": differing,
        "storm_statuses": {str(k): v for k, v in storm.statuses.items()},
        "unique_statuses": {str(k): v for k, v in unique.statuses.items()},
        "storm_p50_ms": s50,
        "storm_p99_ms": s99,
        "unique_p50_ms": u50,
        "unique_p99_ms": u99,
    }
    exact = total == sizes.storm_orders and differing == 0
    note = None
    if storm.statuses != Counter({200: sizes.storm_calls}):
        note = f"statuses {dict(storm.statuses)}"
    if differing:
        note = (note + "; " if note else "") + f"{differing} orders got differing bodies"
    report.add(
        Row(
            "f",
            f"(f) storm: {sizes.storm_calls:,} calls over {sizes.storm_orders} IDs, charges",
            total,
            "charges",
            goal=f"== {sizes.storm_orders}, one body per ID",
            reached=exact,
            note=note,
        )
    )
    report.add(Row("f_p50", "(f) storm p50 latency", s50, "ms", "storm/unique", ratio(s50, u50)))
    report.add(Row("f_p99", "(f) storm p99 latency", s99, "ms", "storm/unique", ratio(s99, u99)))
    unique_note = None
    if unique.statuses != Counter({200: sizes.storm_orders}):
        unique_note = f"statuses {dict(unique.statuses)}"
    report.add(
        Row(
            "f_u50",
            f"(f) {sizes.storm_orders} unique calls p50 latency",
            u50,
            "ms",
            note=unique_note,
        )
    )
    report.add(Row("f_u99", f"(f) {sizes.storm_orders} unique calls p99 latency", u99, "ms"))


async def measure_big_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(g) one fee batch of a million orders; the worker's and the API's peak RSS."""
    worker_rss = PeakRss(stack.worker_pid())
    api_rss = PeakRss(stack.api_pid())
    baseline = worker_rss.sample()
    worker_rss.start()
    api_rss.start()
    completed = False
    try:
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=900) as http,
            stack.cpu(report, "g"),
        ):
            run = await run_batch(stack, http, "g", sizes.big_batch, 0.5, sizes.big_deadline_s)
        completed = run.final.get("succeeded") == sizes.big_batch
    finally:
        worker_peak = worker_rss.finish()
        api_peak = api_rss.finish()
        report.figures["g_rss"] = {
            "worker_baseline_mib": baseline / MIB,
            "worker_peak_mib": worker_peak / MIB,
            "api_peak_mib": api_peak / MIB,
            "samples": worker_rss.samples,
            "interval_s": RSS_INTERVAL,
        }
    rate = sizes.big_batch / run.total_seconds
    report.figures["g"] = run.figures(sizes.big_batch)
    note = f"POST {run.post_seconds:.1f}s, {rate:,.0f} orders/s"
    if not completed:
        note += f"; succeeded {run.final.get('succeeded')} of {sizes.big_batch}"
    report.add(
        Row(
            "g",
            f"(g) fee batch, {sizes.big_batch:,} orders, wall time",
            run.total_seconds,
            "s",
            goal="completes",
            reached=completed,
            note=note,
        )
    )
    report.add(
        Row(
            "g_rss",
            "(g) worker peak RSS (with children)",
            worker_peak / MIB,
            "MiB",
            goal="< 1024 MiB",
            reached=completed and worker_peak < GIB,
            note=f"baseline {baseline / MIB:.0f} MiB",
        )
    )
    report.add(Row("g_api_rss", "(g) API peak RSS (info)", api_peak / MIB, "MiB"))


# Goals a phase could not reach because it failed outright.
PHASE_ROWS: dict[str, list[tuple[str, str, str, str | None]]] = {
    "ab": [
        ("a", "(a) raw Temporal: no-op one-activity workflow", "items/s", None),
        ("b", "(b) idempotent fee API, unique orders", "orders/s", ">= 0.8"),
    ],
    "c": [("c", "(c) seed design: child FeeDeductionWorkflow per order", "orders/s", None)],
    "d": [("d", "(d) fee batch", "orders/s", ">= 30")],
    "e": [("e", "(e) ledger alone, same orders, no Temporal", "orders/s", ">= 0.5")],
    "f": [("f", "(f) duplicate storm, charges", "charges", "== 100")],
    "g": [
        ("g", "(g) fee batch, big, wall time", "s", "completes"),
        ("g_rss", "(g) worker peak RSS (with children)", "MiB", "< 1024 MiB"),
    ],
}


async def run_phase(
    name: str,
    stack: Stack,
    sizes: Sizes,
    report: Report,
    measure: Callable[[Stack, Sizes, Report], Awaitable[None]],
) -> None:
    summary = (measure.__doc__ or "").split(") ", 1)[-1]
    console.print(f"[bold]({name})[/bold] {summary}")
    started = time.perf_counter()
    try:
        stack.check_alive()
        await measure(stack, sizes, report)
    except Exception as exc:
        report.errors[name] = f"{type(exc).__name__}: {exc}"
        console.print(f"[red]({name}) failed:[/red] {type(exc).__name__}: {exc}")
        traceback.print_exc()
        known = {row.key for row in report.rows}
        for key, label, unit, goal in PHASE_ROWS[name]:
            if key not in known:
                report.add(
                    Row(
                        key,
                        label,
                        None,
                        unit,
                        goal=goal,
                        reached=False if goal else None,
                        note=f"error: {type(exc).__name__}",
                    )
                )
    console.print(f"[dim]({name}) took {time.perf_counter() - started:.1f}s[/dim]")


# Output ----------------------------------------------------------------------------------


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def print_table(report: Report, title: str) -> None:
    table = Table(title=title)
    for column in ("measurement", "figure", "unit", "ratio", "goal", "reached", "note"):
        table.add_column(column, justify="right" if column in ("figure", "ratio") else "left")
    for row in report.rows:
        ratio_text = "" if row.ratio_name is None else f"{row.ratio_name} = {fmt(row.ratio)}"
        reached = (
            ""
            if row.reached is None
            else ("[green]yes[/green]" if row.reached else "[red]no[/red]")
        )
        table.add_row(
            row.measurement,
            fmt(row.value),
            row.unit,
            ratio_text,
            row.goal or "",
            reached,
            row.note or "",
        )
    console.print(table)


def print_cpu(report: Report) -> None:
    """Where the time went: CPU seconds of each process during each timed section."""
    names = ["temporal", "api", "worker", "bench"]
    table = Table(title="CPU seconds per process during each timed section")
    table.add_column("section")
    table.add_column("wall s", justify="right")
    for name in names:
        table.add_column(name, justify="right")
    table.add_column("cores busy", justify="right")
    for key, used in report.cpu.items():
        busy = sum(used.get(name, 0.0) for name in names)
        table.add_row(
            key,
            f"{used['wall']:.1f}",
            *(f"{used.get(name, 0.0):.1f}" for name in names),
            f"{busy / used['wall']:.2f}" if used["wall"] else "-",
        )
    console.print(table)


def cpu_pressure() -> str | None:
    """The kernel's CPU pressure line (share of time runnable tasks waited for a core)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except (OSError, IndexError):
        return None


def git(*args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip()


def write_json(
    path: Path,
    report: Report,
    sizes: Sizes,
    args: argparse.Namespace,
    stack: Stack,
    started: dt.datetime,
    seconds: float,
    load_start: tuple[float, ...],
) -> None:
    goals = [
        {
            "key": row.key,
            "goal": row.goal,
            "ratio_name": row.ratio_name,
            "ratio": row.ratio,
            "value": row.value,
            "unit": row.unit,
            "reached": row.reached,
        }
        for row in report.rows
        if row.goal is not None
    ]
    status = git("status", "--porcelain")
    data = {
        "command": " ".join(["python -m bench.run", *sys.argv[1:]]),
        "timestamp": started.isoformat(timespec="seconds"),
        "seconds": seconds,
        "git_commit": git("rev-parse", "HEAD"),
        "git_dirty": None if status is None else bool(status),
        "machine": {
            "nproc": os.cpu_count(),
            "sched_nproc": len(os.sched_getaffinity(0)),
            "loadavg_start": load_start,
            "loadavg_end": os.getloadavg(),
            "cpu_pressure": cpu_pressure(),
            "memory_gib": psutil.virtual_memory().total / GIB,
            "python": sys.version.split()[0],
        },
        "database": stack.settings.database_url.split(":", 1)[0],
        "quick": args.quick,
        "only": args.only or None,
        "sizes": asdict(sizes),
        "rows": [asdict(row) for row in report.rows],
        "ratios": {row.ratio_name: row.ratio for row in report.rows if row.ratio_name},
        "goals": goals,
        "figures": report.figures,
        "cpu_seconds": report.cpu,
        "errors": report.errors,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")


# Main ------------------------------------------------------------------------------------


@contextlib.contextmanager
def cancel_on_signals() -> Iterator[None]:
    """Ctrl-C or SIGTERM cancels the run, so that every finally block runs.

    Handled here, not left to asyncio.run: a background job may inherit SIGINT ignored.
    Later signals are ignored while the processes are being stopped.
    """
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    signals = (signal.SIGINT, signal.SIGTERM)
    cancelled = False

    def cancel() -> None:
        nonlocal cancelled
        if cancelled:
            console.print("[yellow]stopping every process started here; please wait[/yellow]")
            return
        cancelled = True
        task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, cancel)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


PHASES: list[tuple[str, Callable[[Stack, Sizes, Report], Awaitable[None]]]] = [
    ("ab", measure_raw_and_api),
    ("c", measure_children),
    ("d", measure_batch),
    ("e", measure_ledger),
    ("f", measure_storm),
    ("g", measure_big_batch),
]


async def bench(args: argparse.Namespace) -> int:
    sizes = QUICK if args.quick else FULL
    raise_fd_limit()
    started_at = dt.datetime.now(dt.UTC)
    load_start = os.getloadavg()
    started = time.perf_counter()
    report = Report()
    stack = make_stack(args.database_url)
    with cancel_on_signals():
        try:
            await start_stack(stack, sizes)
            worker = Worker(
                stack.the_client(),
                task_queue=stack.bench_queue,
                workflows=[NoopWorkflow, FeeFanoutWorkflow],
                activities=[noop],
                graceful_shutdown_timeout=dt.timedelta(seconds=2),
            )
            async with worker:
                only = {part.strip() for part in args.only.split(",") if part.strip()}
                for name, measure in PHASES:
                    # "ab" measures (a) and (b) together: naming either runs it.
                    if only and not only & {name, *name}:
                        continue
                    await run_phase(name, stack, sizes, report, measure)
        finally:
            await stop_stack(stack)
            if args.keep:
                console.print(f"[dim]kept {stack.tmp}[/dim]")
            else:
                shutil.rmtree(stack.tmp, ignore_errors=True)
    seconds = time.perf_counter() - started
    load_end = os.getloadavg()
    title = (
        f"SuperScript bench ({'quick' if args.quick else 'full'}), "
        f"{started_at:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, {seconds:.0f}s, "
        f"load {load_start[0]:.1f} -> {load_end[0]:.1f}"
    )
    if max(load_start[0], load_end[0]) > (os.cpu_count() or 1):
        console.print(
            "[yellow]the machine was busy with other work during this run: "
            "the figures are lower than an idle machine gives[/yellow]"
        )
    print_table(report, title)
    print_cpu(report)
    write_json(args.out, report, sizes, args, stack, started_at, seconds, load_start)
    console.print(f"wrote {args.out}")
    return 0 if all(row.reached is not False for row in report.rows) else 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for development")
    parser.add_argument(
        "--database-url", default=None, help="the ledger (default: sqlite under the temp dir)"
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON goes")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, databases)")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated measurements to run, e.g. 'a,f' (development; default: all)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return asyncio.run(bench(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        console.print("[yellow]interrupted: every process started here was stopped[/yellow]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
