"""What the commands share: each option of the contract declared once, the settings the
options make, and where output goes.

Every service option defaults to None, so that an unset flag leaves the ``SUPERSCRIPT_*``
variable (or the contract's default) in force: the default shown in ``--help`` is the
contract's, taken from :class:`~superscript.settings.Settings` where it holds one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.console import Console

from superscript.cli import exits
from superscript.settings import Settings, load_settings

console = Console()
# Refusals and errors of the services go to stderr, so scripts can tell them from output.
errors = Console(stderr=True)


def _help(what: str, variable: str, default: object) -> str:
    """``what [VARIABLE] [default: ...]``; the ``\\[`` keeps rich markup off the default."""
    return f"{what} [{variable}] \\[default: {default}]"


def _default(name: str) -> object:
    return Settings.model_fields[name].default


Host = Annotated[
    str | None,
    typer.Option("--host", help=_help("API bind address", "SUPERSCRIPT_HOST", _default("host"))),
]
Port = Annotated[
    int | None,
    typer.Option("--port", help=_help("API port", "SUPERSCRIPT_PORT", _default("port"))),
]
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help=_help("Temporal and ledger data", "SUPERSCRIPT_DATA_DIR", f"./{_default('data_dir')}"),
    ),
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help=_help(
            "sqlite:///... or postgresql://...",
            "SUPERSCRIPT_DATABASE_URL",
            "sqlite:///<data-dir>/ledger.db",
        ),
    ),
]
ScriptsDir = Annotated[
    Path | None,
    typer.Option(
        "--scripts-dir",
        help=_help("registered scripts", "SUPERSCRIPT_SCRIPTS_DIR", "the bundled example scripts"),
    ),
]
TemporalPort = Annotated[
    int | None,
    typer.Option(
        "--temporal-port",
        help=_help(
            "embedded Temporal gRPC port", "SUPERSCRIPT_TEMPORAL_PORT", _default("temporal_port")
        ),
    ),
]
TemporalUiPort = Annotated[
    int | None,
    typer.Option(
        "--temporal-ui-port",
        help=_help(
            "embedded Temporal Web UI port",
            "SUPERSCRIPT_TEMPORAL_UI_PORT",
            _default("temporal_ui_port"),
        ),
    ),
]
TaskQueue = Annotated[
    str | None,
    typer.Option(
        "--task-queue",
        help=_help("Temporal task queue", "SUPERSCRIPT_TASK_QUEUE", _default("task_queue")),
    ),
]
ApiWorker = Annotated[
    bool | None,
    typer.Option(
        "--worker/--no-worker",
        help=_help(
            "Host a worker in the API process (fee workflows then start eagerly)",
            "SUPERSCRIPT_API_WORKER",
            _default("api_worker"),
        ),
    ),
]
ApiUrl = Annotated[
    str | None,
    typer.Option(
        "--api",
        help="the API's base URL \\[default: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT]",
        show_default=False,
    ),
]
"""The API a client command (``batch``, ``demo``) talks to."""


def load(**flags: Any) -> Settings:
    """Settings with the given flags on top (exit 2 when they are invalid); service
    commands pass ``**locals()``, whose names are exactly the contract's options."""
    try:
        return load_settings(**flags)
    except ValidationError as exc:
        errors.print(f"[red]invalid settings:[/red] {exc}")
        raise typer.Exit(exits.INVALID) from exc
