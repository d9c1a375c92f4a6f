"""How a batch is shown in a terminal: its progress bar while it runs, and its tables."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from superscript.cli.http import ApiClient, ApiError

POLL_SECONDS: Final = 0.5
"""How often a wait asks for progress."""
UNREACHABLE_GIVE_UP_SECONDS: Final = 60.0
"""A wait gives up when the API has not answered for this long."""


class RateColumn(ProgressColumn):
    """Items finished per second since the wait began."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        done = task.completed - float(task.fields.get("done_before", 0))
        if not elapsed or done <= 0:
            return Text("-- items/s", style="progress.data.speed")
        return Text(f"{done / elapsed:,.1f} items/s", style="progress.data.speed")


def counts_table(status: dict[str, Any]) -> Table:
    """A batch's status: how many items ended each way, and in all."""
    table = Table(
        title=f"batch {status['batch_id']} ({status['kind']}): {status['status']}",
        min_width=len(str(status["batch_id"])) + 30,
    )
    table.add_column("outcome")
    table.add_column("items", justify="right")
    styles = {"succeeded": "green", "replayed": "cyan", "failed": "red", "pending": "yellow"}
    for name, style in styles.items():
        table.add_row(Text(name, style=style), f"{status[name]:,}")
    table.add_row(Text("total", style="bold"), Text(f"{status['total']:,}", style="bold"))
    return table


def failed_table(items: list[dict[str, Any]]) -> Table:
    table = Table(title="failed items (first ones)")
    table.add_column("order_id")
    table.add_column("outcome", style="red")
    table.add_column("detail")
    for item in items:
        detail = item.get("detail") or ""
        if item.get("exit_code") is not None:
            detail = f"exit code {item['exit_code']}" + (f"; {detail}" if detail else "")
        table.add_row(str(item["order_id"]), str(item.get("outcome") or ""), str(detail))
    return table


def _done(status: dict[str, Any]) -> int:
    return int(status["total"]) - int(status["pending"])


async def wait_for_batch(
    client: ApiClient, batch_id: str, console: Console, within: float | None = None
) -> dict[str, Any]:
    """Poll until the batch completes, with a progress bar; the last status.

    An API that does not answer for a while is waited for (a problem is not);
    :class:`TimeoutError` when the batch has not completed ``within`` seconds.
    """
    status = await client.batch(batch_id)
    last_answer = time.monotonic()
    deadline = None if within is None else last_answer + within
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("elapsed"),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        done = _done(status)
        task = progress.add_task(
            batch_id, total=int(status["total"]), completed=done, done_before=done
        )
        while status["status"] != "completed":
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"batch {batch_id} not completed in {within} s")
            await asyncio.sleep(POLL_SECONDS)
            try:
                status = await client.batch(batch_id)
            except ApiError as exc:
                if exc.code is not None or time.monotonic() - last_answer > (
                    UNREACHABLE_GIVE_UP_SECONDS
                ):
                    raise
                continue
            last_answer = time.monotonic()
            progress.update(task, completed=_done(status))
        progress.update(task, completed=_done(status))
    return status
