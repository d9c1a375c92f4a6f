"""The bench's results: the rows and figures, the two tables, and the JSON."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil
from rich.console import Console
from rich.table import Table

from bench.sizes import Sizes

if TYPE_CHECKING:
    from bench.stack import Stack

REPO = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
GIB = 1024 * MIB

# Wide enough for the table when the output goes to a file.
console = Console() if sys.stdout.isatty() else Console(width=200)


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


def at_most(value: float | None, target: float) -> bool:
    return value is not None and value <= target


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
