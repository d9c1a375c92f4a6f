"""SuperScript's speed, measured on one embedded stack in one run.

``python -m bench.run [--quick] [--database-url URL] [--out bench/results/latest.json]``

Starts the embedded Temporal dev server (WAL pragmas), ``superscript worker`` and
``superscript api`` as real processes on free ports in a temp dir, then measures:

(a) raw Temporal: a no-op one-activity workflow per item (worker inside this process);
(b) the idempotent fee API, one unique order per call;
(c) the seed's design: one child one-activity fee workflow per order under one parent;
(j) one fee call at a time (p50), beside the seed's one fee and (k) an empty eager workflow;
(d) the fee batch (``POST /batches`` to completed);
(e) the ledger alone applying as many fresh orders in batch-sized chunks, no Temporal;
(h) raw stdlib sqlite3 writing (d)'s rows (items stored, then chunks of 2,000 applied);
(i) the same with raw asyncpg, in a scratch schema (only with a PostgreSQL ledger);
(f) a duplicate storm: 1,000 concurrent calls over 100 order IDs, against 100 unique calls;
(g) a 1,000,000-order fee batch (100,000 with ``--quick``), against 40 s (scaled with
    ``--quick``), and the worker's peak RSS.

Every process started here is stopped on the way out, also on Ctrl-C, SIGTERM or error.
See bench/README.md for what each figure means. This module is the command line; the
stack is ``bench/stack.py``, the measurements ``bench/per_order.py`` ((a) to (c)),
``bench/sequential.py`` ((j), (k)), ``bench/batch.py`` ((d), (g)),
``bench/ledger_alone.py`` ((e), (e')), ``bench/raw_sqlite.py`` ((h)),
``bench/raw_asyncpg.py`` ((i)) and ``bench/storm.py`` ((f)), run in order by
``bench/phases.py``; the tables and the JSON are ``bench/report.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import os
import resource
import shutil
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from bench.phases import run_phases
from bench.report import Report, console, print_cpu, print_table, write_json
from bench.sizes import FULL, QUICK
from bench.stack import bench_worker, make_stack, start_stack, stop_stack

DEFAULT_OUT = Path("bench/results/latest.json")


def raise_fd_limit() -> None:
    """1,000 concurrent connections need 1,000 descriptors here and as many in the API."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8_192 if hard == resource.RLIM_INFINITY else min(hard, 8_192)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


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
            async with bench_worker(stack):
                await run_phases(stack, sizes, report, args.only)
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
