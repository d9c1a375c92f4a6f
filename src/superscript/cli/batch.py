"""``superscript batch``: submit a CSV file as one batch, and follow a batch's progress.

Every row is checked here with the API's own rules (:mod:`superscript.cli.csv_file`)
before anything is sent, so a file with bad rows submits nothing and says which lines
are wrong. A good file is then sent as it is, streamed as a ``text/csv`` body, which the
API reads as it arrives. The batch ID defaults to a fingerprint of what is submitted: the
same file again is the same batch, not a new one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any, Final

import typer
from rich.console import Console

from superscript.batches.csv_rows import CsvError
from superscript.cli import exits
from superscript.cli.csv_file import Batch, parse_csv, repeats_note
from superscript.cli.http import ApiClient, ApiError
from superscript.cli.options import ApiUrl, console, load
from superscript.cli.progress import counts_table, failed_table, wait_for_batch
from superscript.contract import ID_RULE, is_identifier
from superscript.settings import Settings

FAILED_SHOWN: Final = 10
"""How many failed items ``--wait`` lists at the end."""

FORMAT_HELP: Final = """\
The file is UTF-8 CSV with a header line; blank lines are skipped.

Fee batch (default): the header is exactly order_id,account_id,amount and each row \
charges AMOUNT to ACCOUNT_ID once for ORDER_ID. AMOUNT is an integer count of minor units \
(cents) from 1 to 10^15: digits only, no sign, decimal point or spaces.

Script batch (--script NAME): the header is order_id followed by one name per argument, \
for example order_id,amount,currency (the names only label the columns). Each row runs \
script NAME once for its ORDER_ID with the row's remaining cells as its arguments, \
verbatim and in order; an empty cell is an empty argument. Every row has exactly as many \
columns as the header.

Identifiers (order_id, account_id, the batch ID, the script name) are 1 to 128 \
characters of A-Z a-z 0-9 . _ : -

Every row is checked before anything is sent: each bad line (the first 100) is reported \
with its line number, nothing is submitted, and the exit code is 2. An ORDER_ID on two \
lines with other values is a bad line too (the batch would fail the second as \
idempotency_key_reused); a line that repeats an earlier one exactly is noted and sent as \
is (the batch applies it once and counts the repeat replayed). A fee file (header \
order_id,account_id,amount) given with --script is refused the same way. Without \
--batch-id the batch ID is csv- and a digest of the items, so submitting the same file \
again is the same batch (nothing runs twice). Problems from the API are printed as \
code: detail (exit code 1).
"""

app = typer.Typer(
    help="Submit a CSV file as one batch, and follow a batch's progress.",
    no_args_is_help=True,
)


def _read(file: Path, console: Console, batch_id: str | None, script: str | None) -> Batch | int:
    """The file as a batch, or the exit code of its refusal (printed)."""
    try:
        data = file.read_bytes()
    except OSError as exc:
        console.print(
            f"[red]error:[/red] cannot read {file}: {exc.strerror or exc}", soft_wrap=True
        )
        return exits.INVALID
    for value, what in ((batch_id, "batch ID"), (script, "script name")):
        if value is not None and not is_identifier(value):
            console.print(f"[red]error:[/red] {what} {value!r} is not {ID_RULE}", highlight=False)
            return exits.INVALID
    try:
        batch = parse_csv(data, script)
    except CsvError as exc:
        console.print(f"[red]invalid {file}:[/red] {exc}", highlight=False, soft_wrap=True)
        console.print("nothing was submitted")
        return exits.INVALID
    if batch.repeats:
        note = repeats_note(batch.repeats)
        console.print(f"[yellow]note:[/yellow] {note}", highlight=False, soft_wrap=True)
    return batch


async def _submit(
    client: ApiClient, console: Console, file: Path, batch: Batch, batch_id: str, wait: bool
) -> int:
    try:
        # Checked whole above; sent as the file itself, streamed (the API reads it so too).
        accepted = await client.submit_csv_batch(file, batch_id, batch.kind, batch.script)
        console.print(
            f"batch [bold]{accepted['batch_id']}[/bold] accepted: {accepted['total']:,} "
            f"{batch.kind} items, workflow {accepted['workflow_id']}",
            highlight=False,
        )
        if not wait:
            console.print(f"follow it with: superscript batch status {accepted['batch_id']}")
            return exits.OK
        status = await wait_for_batch(client, batch_id, console)
        console.print(counts_table(status))
        if not status["failed"]:
            return exits.OK
        console.print(failed_table(await client.failed_items(batch_id, FAILED_SHOWN)))
        return exits.FAILED  # the contract: --wait exits non-zero if any item failed
    except ApiError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return exits.FAILED


def submit_command(
    file: Path,
    *,
    settings: Settings,
    console: Console,
    batch_id: str | None,
    script: str | None,
    wait: bool,
    api: str | None,
) -> int:
    """``superscript batch submit``: the exit code."""
    batch = _read(file, console, batch_id, script)
    if isinstance(batch, int):
        return batch
    chosen = batch_id or batch.default_id()

    async def send() -> int:
        async with ApiClient(settings, api) as client:
            return await _submit(client, console, file, batch, chosen, wait)

    try:
        return asyncio.run(send())
    except KeyboardInterrupt:
        console.print(
            f"stopped waiting; the batch goes on: superscript batch status {chosen}",
            highlight=False,
        )
        return exits.INTERRUPTED


def status_command(batch_id: str, *, settings: Settings, console: Console, api: str | None) -> int:
    """``superscript batch status``: the exit code."""

    async def fetch() -> dict[str, Any]:
        async with ApiClient(settings, api) as client:
            return await client.batch(batch_id)

    try:
        answer = asyncio.run(fetch())
    except ApiError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return exits.FAILED
    console.print(counts_table(answer))
    return exits.OK


@app.command("submit", help=f"Submit FILE.csv as one batch.\n\n{FORMAT_HELP}")
def submit(
    file: Annotated[Path, typer.Argument(help="the CSV file", show_default=False)],
    batch_id: Annotated[
        str | None,
        typer.Option(
            "--batch-id",
            help="the batch ID (default: csv- and a digest of the items)",
            show_default=False,
        ),
    ] = None,
    script: Annotated[
        str | None,
        typer.Option("--script", help="run this script per row instead of charging fees"),
    ] = None,
    wait: Annotated[
        bool,
        typer.Option(
            "--wait",
            help="show a progress bar until the batch completes; exit 1 if any item failed",
        ),
    ] = False,
    api: ApiUrl = None,
) -> None:
    code = submit_command(
        file,
        settings=load(),
        console=console,
        batch_id=batch_id,
        script=script,
        wait=wait,
        api=api,
    )
    raise typer.Exit(code)


@app.command("status")
def status(
    batch_id: Annotated[str, typer.Argument(help="the batch ID", show_default=False)],
    api: ApiUrl = None,
) -> None:
    """One batch's progress: how many items succeeded, were replayed, failed, are pending."""
    raise typer.Exit(status_command(batch_id, settings=load(), console=console, api=api))
