"""The measurements in the order they run, and what a failed one leaves in the table."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable

from bench.batch import measure_batch
from bench.big_batch import measure_big_batch
from bench.ledger_alone import measure_ledger
from bench.per_order import C_LABEL, measure_children, measure_raw_and_api
from bench.raw_asyncpg import measure_raw_asyncpg
from bench.raw_sqlite import measure_raw_sqlite
from bench.report import Report, Row, console
from bench.script_batch import measure_script_batch
from bench.sequential import measure_sequential
from bench.sizes import Sizes
from bench.stack import Stack
from bench.storm import measure_storm

Measure = Callable[[Stack, Sizes, Report], Awaitable[None]]


PHASES: list[tuple[str, Measure]] = [
    ("ab", measure_raw_and_api),
    ("c", measure_children),
    ("j", measure_sequential),
    ("d", measure_batch),
    ("e", measure_ledger),
    ("h", measure_raw_sqlite),
    ("i", measure_raw_asyncpg),
    ("f", measure_storm),
    ("s", measure_script_batch),
    ("g", measure_big_batch),
]


# Goals a phase could not reach because it failed outright.
PHASE_ROWS: dict[str, list[tuple[str, str, str, str | None]]] = {
    "ab": [
        ("a", "(a) raw Temporal: no-op one-activity workflow", "items/s", None),
        ("b", "(b) idempotent fee API, unique orders", "orders/s", ">= 0.8"),
    ],
    "c": [("c", C_LABEL, "orders/s", ">= 1.5")],
    "j": [
        ("j_seed", "(j) seed design: one one-activity fee workflow, p50", "ms", None),
        ("j", "(j) sequential fee p50 (POST /orders/{id}/fee)", "ms", "<= 0.35"),
        ("k", "(k) empty eager workflow p50, runner as the fee's", "ms", None),
        ("jk", "(j) against (k)", "ms", "<= 2.5"),
    ],
    "d": [("d", "(d) fee batch", "orders/s", ">= 30")],
    "e": [("e", "(e) ledger alone, same orders, no Temporal", "orders/s", ">= 0.5")],
    "h": [("h", "(h) raw sqlite3: (d)'s rows, stored + applied", "orders/s", ">= 0.5")],
    "i": [("i", "(i) raw asyncpg: (d)'s rows, stored + applied", "orders/s", ">= 0.5")],
    "f": [("f", "(f) duplicate storm, charges", "charges", "== 100")],
    "s": [
        ("s_bare", "(s') bare runner, trivial script", "runs/s", None),
        ("s", "(s) script batch, trivial script", "items/s", ">= 0.5"),
    ],
    "g": [
        ("g", "(g) fee batch, big, wall time", "s", "completes"),
        ("g_goal", "(g) fee batch, big, end to end, POST included", "s", "<= 40 s"),
        ("g_rss", "(g) worker peak RSS (with children)", "MiB", "< 1024 MiB"),
        ("g_peak", "(g) API + worker peak RSS, JSON body", "MiB", "<= 400 MiB"),
        ("g_csv", "(g) the same as CSV, wall time", "s", "completes"),
        ("g_csv_peak", "(g) API + worker peak RSS, CSV body", "MiB", "<= 400 MiB"),
    ],
}


async def run_phase(
    name: str,
    stack: Stack,
    sizes: Sizes,
    report: Report,
    measure: Measure,
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


async def run_phases(stack: Stack, sizes: Sizes, report: Report, only: str) -> None:
    """Every measurement, or those ``only`` names (comma-separated)."""
    named = {part.strip() for part in only.split(",") if part.strip()}
    for name, measure in PHASES:
        # "ab" measures (a) and (b) together: naming either runs it.
        if named and not named & {name, *name}:
            continue
        await run_phase(name, stack, sizes, report, measure)
