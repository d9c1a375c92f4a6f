"""``superscript batch``: submit a CSV file as one batch, and follow a batch's progress.

Every row is checked here with the API's own rules (``superscript.contract``) before
anything is sent, so a file with bad rows submits nothing and says which lines are wrong.
The batch ID defaults to a fingerprint of what is submitted: the same file again is the
same batch, not a new one.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx
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

from superscript.contract import (
    ID_RULE,
    MAX_AMOUNT,
    MAX_ARGS,
    MAX_BATCH_ITEMS,
    arg_problem,
    args_problem,
    is_amount,
    is_identifier,
)
from superscript.settings import Settings

DIGITS_RE: Final = re.compile(r"[0-9]+")
AMOUNT_MAX_DIGITS: Final = len(str(MAX_AMOUNT))
FEE_HEADER: Final = ("order_id", "account_id", "amount")
MAX_REPORTED_LINES: Final = 100
"""A file with more bad lines than this reports these first ones."""

POLL_SECONDS: Final = 0.5
"""How often ``--wait`` asks for progress."""
UNREACHABLE_GIVE_UP_SECONDS: Final = 60.0
"""``--wait`` gives up when the API has not answered for this long."""
SUBMIT_TIMEOUT_SECONDS: Final = 600.0
"""A million items is a large body to store: the POST may take a while."""
REQUEST_TIMEOUT_SECONDS: Final = 30.0

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_INVALID: Final = 2
EXIT_INTERRUPTED: Final = 130

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
with its line number, nothing is submitted, and the exit code is 2. A fee file (header \
order_id,account_id,amount) given with --script is refused the same way. Without \
--batch-id the batch ID is csv- and a digest of the items, so submitting the same file \
again is the same batch (nothing runs twice). Problems from the API are printed as \
code: detail (exit code 1).
"""


class CsvError(ValueError):
    """A row (or the file) breaks the rules: nothing of the file may be submitted.

    ``line`` and ``reason`` are the first problem's; ``problems`` lists every bad line
    found (up to ``MAX_REPORTED_LINES``), so one run of the command shows them all.
    """

    def __init__(self, line: int | None, reason: str) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{reason}")
        self.line = line
        self.reason = reason
        self.problems: list[CsvError] = [self]

    @classmethod
    def of(cls, problems: list[CsvError]) -> CsvError:
        """One error that reports each of ``problems`` (the first ones), a line each."""
        if len(problems) == 1:
            return problems[0]
        shown = problems[:MAX_REPORTED_LINES]
        if len(problems) > MAX_REPORTED_LINES:
            heading = f"more than {MAX_REPORTED_LINES} bad lines; the first ones:"
        else:
            heading = f"{len(shown)} bad lines:"
        error = cls(shown[0].line, shown[0].reason)
        error.args = ("\n".join([heading, *(str(problem) for problem in shown)]),)
        error.problems = shown
        return error


@dataclass(frozen=True)
class Batch:
    """A validated batch request, ready to POST to ``/batches``."""

    kind: str
    script: str | None
    items: list[dict[str, Any]]

    def fingerprint(self) -> str:
        """The same kind, script and items (in order) give the same hex digest."""
        digest = hashlib.sha256(f"{self.kind}\n{self.script or ''}\n".encode())
        for item in self.items:
            digest.update(json.dumps(item, separators=(",", ":"), sort_keys=True).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def default_id(self) -> str:
        return f"csv-{self.fingerprint()[:16]}"

    def body(self, batch_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"batch_id": batch_id, "kind": self.kind}
        if self.script is not None:
            body["script"] = self.script
        body["items"] = self.items
        return body


def check_identifier(value: str, what: str, line: int | None = None) -> str:
    if not is_identifier(value):
        shown = repr(value) if value else "empty"
        raise CsvError(line, f"{what} {shown} is not {ID_RULE}")
    return value


def check_amount(value: str, line: int) -> int:
    if not DIGITS_RE.fullmatch(value):
        shown = repr(value) if value else "empty"
        raise CsvError(
            line,
            f"amount {shown} is not a plain integer of minor units "
            "(digits only: no sign, decimal point or spaces)",
        )
    significant = value.lstrip("0")
    # Digits first: int() of a huge string is slow (and refused past 4,300 digits).
    if not significant or len(significant) > AMOUNT_MAX_DIGITS or not is_amount(int(significant)):
        raise CsvError(line, f"amount {value} is outside 1 to 10^15")
    return int(significant)


def check_arg(value: str, column: str, line: int) -> str:
    problem = arg_problem(value)
    if problem is not None:
        raise CsvError(line, f"argument {column!r} {problem}")
    return value


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CsvError(line, "not valid UTF-8 text") from exc


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank record; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvError(reader.line_num, f"malformed CSV: {exc}") from exc
        if row:  # a blank line is no record
            yield line, row
        line = reader.line_num + 1


def _item(header: list[str], line: int, row: list[str], script: str | None) -> dict[str, Any]:
    """One row as a batch item; :class:`CsvError` says why it can't be one."""
    if len(row) != len(header):
        missing = "missing" if len(row) < len(header) else "extra"
        raise CsvError(
            line, f"{len(row)} columns where the header has {len(header)} ({missing} columns)"
        )
    order_id = check_identifier(row[0], "order_id", line)
    if script is None:
        account_id = check_identifier(row[1], "account_id", line)
        amount = check_amount(row[2], line)
        return {"order_id": order_id, "account_id": account_id, "amount": amount}
    args = [check_arg(cell, name, line) for name, cell in zip(header[1:], row[1:], strict=True)]
    problem = args_problem(args)
    if problem is not None:
        raise CsvError(line, problem)
    return {"order_id": order_id, "args": args}


def _check_header(header: list[str], line: int, script: str | None) -> None:
    if script is None:
        if tuple(header) != FEE_HEADER:
            raise CsvError(
                line,
                f"header {','.join(header)!r} is not 'order_id,account_id,amount' "
                "(use --script NAME for a script batch)",
            )
        return
    if tuple(header) == FEE_HEADER:
        # Run as a script batch, every row would be a script run that fails (or worse,
        # one that takes the account and amount for arguments): refuse it before.
        raise CsvError(
            line,
            f"header 'order_id,account_id,amount' is a fee batch's header, not a script's: "
            f"drop --script {script} to submit it as a fee batch",
        )
    if not header or header[0] != "order_id":
        raise CsvError(line, "a script batch's header starts with 'order_id', then the args")
    if len(header) - 1 > MAX_ARGS:
        raise CsvError(line, f"at most {MAX_ARGS} argument columns")


def parse_csv(data: bytes, script: str | None = None) -> Batch:
    """Validate the whole file; :class:`CsvError` names every bad line (up to 100)."""
    records = _records(_decode(data))
    first = next(records, None)
    if first is None:
        raise CsvError(None, "the file is empty: want a header line and at least one row")
    header_line, header = first
    header = [name.strip() for name in header]
    _check_header(header, header_line, script)

    items: list[dict[str, Any]] = []
    bad: list[CsvError] = []
    rows = 0
    try:
        for line, row in records:
            rows += 1
            if rows > MAX_BATCH_ITEMS:
                bad.append(CsvError(line, f"a batch holds at most {MAX_BATCH_ITEMS:,} rows"))
                break
            try:
                items.append(_item(header, line, row, script))
            except CsvError as exc:
                bad.append(exc)
                if len(bad) > MAX_REPORTED_LINES:
                    break
    except CsvError as exc:  # malformed CSV: nothing after it can be read reliably
        bad.append(exc)
    if bad:
        raise CsvError.of(bad)
    if not items:
        raise CsvError(None, "no rows after the header: nothing to submit")
    return Batch(kind="script" if script is not None else "fee", script=script, items=items)


# --- talking to the API -------------------------------------------------------------------


def default_api_url(settings: Settings) -> str:
    """The API of these settings, as a client reaches it (a wildcard bind means loopback)."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def auth_headers(settings: Settings) -> dict[str, str]:
    if settings.api_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}


class ApiError(Exception):
    """The API answered with a problem (or something else that is not the answer)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


def problem_message(response: httpx.Response) -> ApiError:
    """``code: detail`` of a problem document; the status and text of anything else."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return ApiError(f"{body['code']}: {body.get('detail', '')}", body["code"])
    text = response.text.strip().replace("\n", " ")[:300]
    return ApiError(f"HTTP {response.status_code}: {text or response.reason_phrase}")


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise ApiError(f"HTTP {response.status_code}: unexpected body {response.text[:300]}")
    return body


class BatchClient:
    """The two batch routes over one HTTP connection."""

    def __init__(self, api: str, settings: Settings) -> None:
        self.api = api.rstrip("/")
        self.http = httpx.Client(
            base_url=self.api, headers=auth_headers(settings), timeout=REQUEST_TIMEOUT_SECONDS
        )

    def close(self) -> None:
        self.http.close()

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach the API at {self.api}: {exc}") from exc

    def submit(self, body: dict[str, Any]) -> dict[str, Any]:
        response = self._request("POST", "/batches", json=body, timeout=SUBMIT_TIMEOUT_SECONDS)
        if response.status_code != 202:
            raise problem_message(response)
        return _json(response)

    def status(self, batch_id: str) -> dict[str, Any]:
        response = self._request("GET", f"/batches/{batch_id}")
        if response.status_code != 200:
            raise problem_message(response)
        return _json(response)

    def failed_items(self, batch_id: str, limit: int) -> list[dict[str, Any]]:
        response = self._request(
            "GET", f"/batches/{batch_id}/items", params={"status": "failed", "limit": limit}
        )
        if response.status_code != 200:
            raise problem_message(response)
        items = _json(response).get("items", [])
        return [item for item in items if isinstance(item, dict)]


# --- showing progress ---------------------------------------------------------------------


class RateColumn(ProgressColumn):
    """Items finished per second since the wait began."""

    def render(self, task: Task) -> Text:
        elapsed = task.elapsed
        done = task.completed - float(task.fields.get("done_before", 0))
        if not elapsed or done <= 0:
            return Text("-- items/s", style="progress.data.speed")
        return Text(f"{done / elapsed:,.1f} items/s", style="progress.data.speed")


def counts_table(status: dict[str, Any]) -> Table:
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


def wait_for_batch(
    client: BatchClient, batch_id: str, console: Console, first: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Poll until the batch completes, with a progress bar; the last status."""
    status = first or client.status(batch_id)
    last_answer = time.monotonic()
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
            time.sleep(POLL_SECONDS)
            try:
                status = client.status(batch_id)
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


# --- the commands ---------------------------------------------------------------------------


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
    try:
        data = file.read_bytes()
    except OSError as exc:
        console.print(
            f"[red]error:[/red] cannot read {file}: {exc.strerror or exc}", soft_wrap=True
        )
        return EXIT_INVALID
    for value, what in ((batch_id, "batch ID"), (script, "script name")):
        if value is not None and not is_identifier(value):
            console.print(f"[red]error:[/red] {what} {value!r} is not {ID_RULE}", highlight=False)
            return EXIT_INVALID
    try:
        batch = parse_csv(data, script)
    except CsvError as exc:
        console.print(f"[red]invalid {file}:[/red] {exc}", highlight=False, soft_wrap=True)
        console.print("nothing was submitted")
        return EXIT_INVALID
    chosen = batch_id or batch.default_id()
    client = BatchClient(api or default_api_url(settings), settings)
    try:
        accepted = client.submit(batch.body(chosen))
        console.print(
            f"batch [bold]{accepted['batch_id']}[/bold] accepted: {accepted['total']:,} "
            f"{batch.kind} items, workflow {accepted['workflow_id']}",
            highlight=False,
        )
        if not wait:
            console.print(f"follow it with: superscript batch status {accepted['batch_id']}")
            return EXIT_OK
        status = wait_for_batch(client, chosen, console)
        console.print(counts_table(status))
        if status["failed"]:
            console.print(failed_table(client.failed_items(chosen, 10)))
        return EXIT_OK
    except ApiError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return EXIT_FAILED
    except KeyboardInterrupt:
        console.print(
            f"stopped waiting; the batch goes on: superscript batch status {chosen}",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    finally:
        client.close()


def status_command(batch_id: str, *, settings: Settings, console: Console, api: str | None) -> int:
    """``superscript batch status``: the exit code."""
    client = BatchClient(api or default_api_url(settings), settings)
    try:
        status = client.status(batch_id)
    except ApiError as exc:
        console.print(f"[red]{exc}[/red]", highlight=False)
        return EXIT_FAILED
    finally:
        client.close()
    console.print(counts_table(status))
    return EXIT_OK
