"""The ``superscript`` command: run the stack or its parts, and drive it from a terminal."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import os
import signal
import sys
import traceback
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from superscript import batch_cli
from superscript import demo as demo_module
from superscript.settings import Settings, load_settings

if TYPE_CHECKING:
    from superscript.datadir import DataDirLock
    from superscript.devserver import DevServer

# The services (API, worker, dev server) are imported where they run, so that the client
# commands (batch, demo) start without loading the whole server.

app = typer.Typer(
    help="SuperScript: payment operations that happen exactly once per order.",
    epilog=(
        "Exit codes: 0 done (a service stopped by SIGTERM or Ctrl-C included), 1 an error, "
        "2 bad usage or settings, 130 interrupted before it could stop cleanly."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()
# Refusals and errors go to stderr, so scripts can tell them from output.
errors = Console(stderr=True)

# The options of the contract shared by up, dev-server, worker and api. Each defaults to
# None so that an unset flag leaves the SUPERSCRIPT_* variable (or the default) in force.
Host = Annotated[str | None, typer.Option("--host", help="API bind address [SUPERSCRIPT_HOST]")]
Port = Annotated[int | None, typer.Option("--port", help="API port [SUPERSCRIPT_PORT]")]
DataDir = Annotated[
    Path | None, typer.Option("--data-dir", help="Temporal and ledger data [SUPERSCRIPT_DATA_DIR]")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url", help="sqlite:///... or postgresql://... [SUPERSCRIPT_DATABASE_URL]"
    ),
]
ScriptsDir = Annotated[
    Path | None, typer.Option("--scripts-dir", help="registered scripts [SUPERSCRIPT_SCRIPTS_DIR]")
]
TemporalPort = Annotated[
    int | None,
    typer.Option("--temporal-port", help="embedded Temporal gRPC port [SUPERSCRIPT_TEMPORAL_PORT]"),
]
TemporalUiPort = Annotated[
    int | None,
    typer.Option(
        "--temporal-ui-port", help="embedded Temporal Web UI port [SUPERSCRIPT_TEMPORAL_UI_PORT]"
    ),
]
TaskQueue = Annotated[
    str | None, typer.Option("--task-queue", help="Temporal task queue [SUPERSCRIPT_TASK_QUEUE]")
]


# What --help says of the data dir (typer keeps a paragraph's line breaks: none here).
LEDGER_RECORD_HELP = (
    "A data dir remembers its ledger (<data-dir>/ledger.json: the URL, password hidden, and "
    "the identity the database holds), written on first use with the embedded Temporal; a "
    "start with another --database-url is refused before anything starts, naming both. With "
    "TEMPORAL_ADDRESS set nothing is recorded, but an existing record is still enforced."
)
UP_HELP = (
    "Everything on one machine: embedded Temporal, one worker and the HTTP API.\n\n"
    "One data dir, one stack, one ledger: before anything starts, the data dir is locked (a "
    "second up or dev-server on it exits at once, non-zero, naming the process that holds "
    "it) and every port (API, Temporal gRPC and Web UI) is bound once to check it is free. "
    f"{LEDGER_RECORD_HELP} Prints the ledger's URL (password hidden) with its addresses."
)
DEV_SERVER_HELP = (
    "Only the embedded Temporal dev server, persistent under the data dir.\n\n"
    "It locks the data dir as up does (a second dev-server or up on it exits at once, naming "
    "the holder) and checks its two ports first. It has no ledger, so it records and checks "
    "none: the worker and API started against it do."
)
WORKER_HELP = (
    "Only a worker; run as many as you like against one Temporal.\n\n"
    f"Refused before it polls when the data dir belongs to another ledger. {LEDGER_RECORD_HELP}"
)
API_HELP = (
    "Only the HTTP API.\n\n"
    "Its port is checked free and its ledger against the data dir's before it serves. "
    f"{LEDGER_RECORD_HELP}"
)


def _claim(settings: Settings, *, api: bool, temporal: bool) -> DataDirLock:
    """Lock the data dir and check the ports before the servers' modules even load, so a
    refusal comes at once and nothing has started."""
    from superscript import datadir

    try:
        return datadir.claim(
            settings.data_dir, datadir.service_ports(settings, api=api, temporal=temporal)
        )
    except (datadir.StartRefused, OSError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


def _settings(**flags: Any) -> Settings:
    """Settings with the given flags on top; service commands pass ``**locals()``, whose
    names are exactly the contract's options."""
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        errors.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(coro: Any) -> None:
    """Run a service to its end; a stop signal it handled is a normal end (exit code 0).

    An interrupt before the service installed its own stop handlers cancels it (its
    ``finally`` blocks still stop what it started) and exits 130, as Ctrl-C does.
    """
    try:
        asyncio.run(coro)
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    except (ValueError, RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command(help=UP_HELP)
def up(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    temporal_ui_port: TemporalUiPort = None,
    task_queue: TaskQueue = None,
) -> None:
    """Everything on one machine: embedded Temporal, one worker and the HTTP API."""
    settings = _settings(**locals())
    _logging()

    def announce(server: DevServer | None) -> None:
        from superscript.datadir import ledger_url

        base = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold green]SuperScript[/bold green] API      {base}")
        console.print(f"            API docs {base}/docs")
        console.print(f"            metrics  {base}/metrics")
        if server is not None:
            console.print(f"            Temporal {server.address}  Web UI {server.ui_url}")
        else:
            console.print("            Temporal from TEMPORAL_ADDRESS (no embedded server)")
        console.print(f"            ledger   {ledger_url(settings.database_url)}")
        console.print("            Ctrl-C stops everything.")

    lock = _claim(settings, api=True, temporal=settings.temporal_embedded)
    from superscript import runtime

    _run(runtime.up(settings, announce, lock))


@app.command("dev-server", help=DEV_SERVER_HELP)
def dev_server(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    temporal_ui_port: TemporalUiPort = None,
    task_queue: TaskQueue = None,
) -> None:
    """Only the embedded Temporal dev server, persistent under the data dir."""
    settings = _settings(**locals())

    def announce(server: DevServer) -> None:
        console.print(f"Temporal dev server {server.address}  Web UI {server.ui_url}")

    lock = _claim(settings, api=False, temporal=True)
    from superscript import runtime

    _run(runtime.dev_server_until_stopped(settings, announce, lock))


@app.command(help=WORKER_HELP)
def worker(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    temporal_ui_port: TemporalUiPort = None,
    task_queue: TaskQueue = None,
) -> None:
    """Only a worker; run as many as you like against one Temporal."""
    settings = _settings(**locals())
    _logging()
    from superscript import runtime

    _run(runtime.worker(settings))


@app.command(help=API_HELP)
def api(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    temporal_ui_port: TemporalUiPort = None,
    task_queue: TaskQueue = None,
) -> None:
    """Only the HTTP API."""
    settings = _settings(**locals())
    _logging()
    try:
        settings.check_exposure()
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    from superscript import runtime

    _run(runtime.api(settings))


ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="the API's base URL (default: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT)",
        show_default=False,
    ),
]


@app.command()
def demo(api: ApiUrl = None) -> None:
    """The seed's four demonstrations against a running stack, told as a story.

    (1) the naive routes charge twice and pay three times, (2) the idempotent fee charges
    once, (3) the payment script runs once, (4) a batch replays what was paid before.
    Without a stack at the API address it starts its own (superscript up, fresh data dir)
    and stops it at the end. Exit code 1 if any demonstration did not show what it should.
    """
    settings = _settings()
    try:
        ok = asyncio.run(demo_module.demo(settings, console, api))
    except KeyboardInterrupt:
        raise typer.Exit(INTERRUPTED) from None
    raise typer.Exit(0 if ok else 1)


batch_app = typer.Typer(
    help="Submit a CSV file as one batch, and follow a batch's progress.",
    no_args_is_help=True,
)
app.add_typer(batch_app, name="batch")


@batch_app.command("submit", help=f"Submit FILE.csv as one batch.\n\n{batch_cli.FORMAT_HELP}")
def batch_submit(
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
        bool, typer.Option("--wait", help="show a progress bar until the batch completes")
    ] = False,
    api: ApiUrl = None,
) -> None:
    code = batch_cli.submit_command(
        file,
        settings=_settings(),
        console=console,
        batch_id=batch_id,
        script=script,
        wait=wait,
        api=api,
    )
    raise typer.Exit(code)


@batch_app.command("status")
def batch_status(
    batch_id: Annotated[str, typer.Argument(help="the batch ID", show_default=False)],
    api: ApiUrl = None,
) -> None:
    """One batch's progress: how many items succeeded, were replayed, failed, are pending."""
    raise typer.Exit(
        batch_cli.status_command(batch_id, settings=_settings(), console=console, api=api)
    )


INTERRUPTED = 130
"""The exit code of a command interrupted (SIGINT or SIGTERM) before it could stop cleanly."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM before a service installed its stop handlers: do what SIGINT would do.

    Inside ``asyncio.run`` that cancels the main task, so what was already started (the
    embedded dev server, say) is stopped by its ``finally`` blocks instead of orphaned;
    elsewhere it raises ``KeyboardInterrupt``. A running service replaces this handler.
    """
    handler = signal.getsignal(signal.SIGINT)
    if callable(handler):
        handler(signum, frame)
    else:
        raise KeyboardInterrupt


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _exit(code: int) -> NoReturn:
    """Flush everything and leave with ``code``, skipping the interpreter's finalization.

    Temporal's native (Rust core) threads can still call into Python while the
    interpreter finalizes, which aborts the process (exit -6, ``Fatal Python error:
    PyGILState_Release``; temporalio/sdk-python#300) after all the work was done and
    shut down cleanly. So once the command has returned, run the atexit handlers, flush
    the logs and the standard streams, and ``os._exit``: no finalization, no abort.
    """
    # A signal now would raise in the middle of the flush and lose the exit code.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    try:
        atexit._run_exitfuncs()
        logging.shutdown()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)


def main() -> None:
    """The console script: run the command, then exit with its own code, every time.

    Exit codes: the command's own (``typer.Exit``, 0 for a service stopped by SIGTERM or
    SIGINT), 2 for a usage error, 130 when interrupted before it could stop cleanly, 1 for
    an unexpected error (its traceback printed).
    """
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        app()
        code = 0
    except SystemExit as exc:
        code = _exit_code(exc)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BaseException:
        traceback.print_exc()
        code = 1
    _exit(code)
