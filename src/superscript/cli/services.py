"""The service commands: ``up``, ``dev-server``, ``worker`` and ``api``.

Each lists only the options it uses. The services themselves (API, worker, dev server)
are imported where they run, so that the client commands (``batch``, ``demo``) start
without loading the whole server.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

import typer

from superscript.cli import exits
from superscript.cli.options import (
    ApiWorker,
    DatabaseUrl,
    DataDir,
    Host,
    Port,
    ScriptsDir,
    TaskQueue,
    TemporalPort,
    TemporalUiPort,
    console,
    errors,
    load,
)
from superscript.settings import Settings

if TYPE_CHECKING:
    from superscript.datadir import DataDirLock
    from superscript.devserver import DevServer

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
        raise typer.Exit(exits.FAILED) from exc


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
        raise typer.Exit(exits.INTERRUPTED) from None
    except (ValueError, RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exits.FAILED) from exc


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
    settings = load(**locals())
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


def dev_server(
    data_dir: DataDir = None,
    temporal_port: TemporalPort = None,
    temporal_ui_port: TemporalUiPort = None,
) -> None:
    """Only the embedded Temporal dev server, persistent under the data dir."""
    settings = load(**locals())

    def announce(server: DevServer) -> None:
        console.print(f"Temporal dev server {server.address}  Web UI {server.ui_url}")

    lock = _claim(settings, api=False, temporal=True)
    from superscript import runtime

    _run(runtime.dev_server_until_stopped(settings, announce, lock))


def worker(
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    task_queue: TaskQueue = None,
) -> None:
    """Only a worker; run as many as you like against one Temporal."""
    settings = load(**locals())
    _logging()
    from superscript import runtime

    _run(runtime.worker(settings))


def api(
    host: Host = None,
    port: Port = None,
    data_dir: DataDir = None,
    database_url: DatabaseUrl = None,
    scripts_dir: ScriptsDir = None,
    temporal_port: TemporalPort = None,
    task_queue: TaskQueue = None,
    api_worker: ApiWorker = None,
) -> None:
    """Only the HTTP API (and, unless --no-worker, a worker sharing its Temporal client)."""
    settings = load(**locals())
    _logging()
    try:
        settings.check_exposure()
    except ValueError as exc:
        errors.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(exits.INVALID) from exc
    from superscript import runtime

    _run(runtime.api(settings))


def register(app: typer.Typer) -> None:
    """The four service commands, on ``app``."""
    app.command(help=UP_HELP)(up)
    app.command("dev-server", help=DEV_SERVER_HELP)(dev_server)
    app.command(help=WORKER_HELP)(worker)
    app.command(help=API_HELP)(api)
