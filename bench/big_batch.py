"""(g): one fee batch of a million orders through the API, sent as JSON and again as CSV.

Each is timed from the POST to ``completed`` while the API's and the worker's resident
memory are sampled: issue #11 wants the whole ``up`` process (API and worker) under
400 MiB for either body, and the JSON batch done in 40 s end to end.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from bench.batch import BatchRun, run_batch
from bench.probes import RSS_INTERVAL, PeakRss
from bench.report import GIB, MIB, Report, Row
from bench.sizes import BIG_GOAL_ORDERS, BIG_GOAL_S, Sizes
from bench.stack import Stack
from superscript.db.engine import is_sqlite

# Issue #11: the API's peak memory for a 1,000,000-order batch, JSON or CSV, API and worker.
PEAK_GOAL_MIB = 400


@dataclass(frozen=True)
class Peaks:
    worker_baseline: int
    worker: int
    api: int

    @property
    def both(self) -> int:
        return self.worker + self.api


async def sampled_batch(
    stack: Stack, sizes: Sizes, report: Report, tag: str, csv: bool
) -> tuple[BatchRun, Peaks]:
    """One big batch while both processes' RSS is sampled."""
    worker_rss = PeakRss(stack.worker_pid())
    api_rss = PeakRss(stack.api_pid())
    baseline = worker_rss.sample()
    worker_rss.start()
    api_rss.start()
    try:
        async with (
            httpx.AsyncClient(base_url=stack.api_url, timeout=900) as http,
            stack.cpu(report, tag),
        ):
            run = await run_batch(
                stack, http, tag, sizes.big_batch, 0.5, sizes.big_deadline_s, csv=csv
            )
    finally:
        peaks = Peaks(baseline, worker_rss.finish(), api_rss.finish())
        report.figures[f"{tag}_rss"] = {
            "worker_baseline_mib": peaks.worker_baseline / MIB,
            "worker_peak_mib": peaks.worker / MIB,
            "api_peak_mib": peaks.api / MIB,
            "sum_mib": peaks.both / MIB,
            "samples": worker_rss.samples,
            "interval_s": RSS_INTERVAL,
        }
    report.figures[tag] = run.figures(sizes.big_batch)
    return run, peaks


async def measure_big_batch(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(g) the JSON batch: wall time, its goal, peak memory; then (g csv) the same as CSV."""
    run, peaks = await sampled_batch(stack, sizes, report, "g", csv=False)
    completed = run.final.get("succeeded") == sizes.big_batch
    rate = sizes.big_batch / run.total_seconds
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
    report.add(big_goal_row(stack, sizes, report, run.total_seconds, completed))
    report.add(
        Row(
            "g_rss",
            "(g) worker peak RSS (with children)",
            peaks.worker / MIB,
            "MiB",
            goal="< 1024 MiB",
            reached=completed and peaks.worker < GIB,
            note=f"baseline {peaks.worker_baseline / MIB:.0f} MiB",
        )
    )
    report.add(Row("g_api_rss", "(g) API peak RSS, JSON body", peaks.api / MIB, "MiB"))
    report.add(peak_row("g_peak", "JSON", peaks, completed))
    csv_run, csv_peaks = await sampled_batch(stack, sizes, report, "g_csv", csv=True)
    csv_done = csv_run.final.get("succeeded") == sizes.big_batch
    report.add(
        Row(
            "g_csv",
            f"(g) the same as CSV, {sizes.big_batch:,} orders, wall time",
            csv_run.total_seconds,
            "s",
            goal="completes",
            reached=csv_done,
            note=f"POST {csv_run.post_seconds:.1f}s; API peak {csv_peaks.api / MIB:.0f} MiB",
        )
    )
    report.add(peak_row("g_csv_peak", "CSV", csv_peaks, csv_done))


def peak_row(key: str, body: str, peaks: Peaks, completed: bool) -> Row:
    """API + worker peak RSS against the 400 MiB of the whole ``up`` process."""
    return Row(
        key,
        f"(g) API + worker peak RSS, {body} body",
        peaks.both / MIB,
        "MiB",
        goal=f"<= {PEAK_GOAL_MIB} MiB",
        reached=completed and peaks.both <= PEAK_GOAL_MIB * MIB,
        note=f"API {peaks.api / MIB:.0f} + worker {peaks.worker / MIB:.0f} MiB",
    )


def big_goal_row(
    stack: Stack, sizes: Sizes, report: Report, seconds: float, completed: bool
) -> Row:
    """(g) against the issue's 40 s for 1,000,000 orders (scaled to ``--quick``'s size),
    with what the raw baseline of the ledger's database, (h) or (i), would take."""
    goal = sizes.big_goal_s
    goal_text = f"<= {goal:.0f} s"
    if sizes.big_batch != BIG_GOAL_ORDERS:
        goal_text += f" ({BIG_GOAL_S:.0f} s per {BIG_GOAL_ORDERS:,}, scaled)"
    key, driver = ("h", "sqlite3") if is_sqlite(stack.the_ledger().engine) else ("i", "asyncpg")
    raw = report.figures.get(key)
    note = None
    if raw:
        note = f"raw {driver} ({key}) would take {sizes.big_batch / raw['orders_per_s']:.1f} s"
    return Row(
        "g_goal",
        f"(g) fee batch, {sizes.big_batch:,} orders, end to end, POST included",
        seconds,
        "s",
        goal=goal_text,
        reached=completed and seconds <= goal,
        note=note,
    )
