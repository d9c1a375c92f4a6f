"""The ``superscript`` command: run the stack or its parts, and drive it from a terminal."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from superscript import runtime
from superscript.devserver import DevServer
from superscript.settings import Settings, load_settings

app = typer.Typer(
    help="SuperScript: payment operations that happen exactly once per order.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
console = Console()

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


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        console.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(2) from exc


def _logging() -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def _run(coro: Any) -> None:
    try:
        asyncio.run(coro)
    except (ValueError, RuntimeError, TimeoutError, FileNotFoundError, OSError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from exc


@app.command()
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
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        scripts_dir=scripts_dir,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        task_queue=task_queue,
    )
    _logging()

    def announce(server: DevServer | None) -> None:
        base = f"http://{settings.host}:{settings.port}"
        console.print(f"[bold green]SuperScript[/bold green] API      {base}")
        console.print(f"            API docs {base}/docs")
        if server is not None:
            console.print(f"            Temporal {server.address}  Web UI {server.ui_url}")
        else:
            console.print("            Temporal from TEMPORAL_ADDRESS (no embedded server)")
        console.print("            Ctrl-C stops everything.")

    _run(runtime.up(settings, announce))


@app.command("dev-server")
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
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        scripts_dir=scripts_dir,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        task_queue=task_queue,
    )

    def announce(server: DevServer) -> None:
        console.print(f"Temporal dev server {server.address}  Web UI {server.ui_url}")

    _run(runtime.dev_server_until_stopped(settings, announce))


@app.command()
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
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        scripts_dir=scripts_dir,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        task_queue=task_queue,
    )
    _logging()
    _run(runtime.run_until_stopped(lambda stop: runtime.serve_worker(settings, stop)))


@app.command()
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
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        database_url=database_url,
        scripts_dir=scripts_dir,
        temporal_port=temporal_port,
        temporal_ui_port=temporal_ui_port,
        task_queue=task_queue,
    )
    _logging()
    try:
        settings.check_exposure()
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from exc
    _run(runtime.run_until_stopped(lambda stop: runtime.serve_api(settings, stop)))


def main() -> None:
    app()
