"""The ``superscript`` command: the Typer app, the commands on it, and ``--version``.

Each command lives with its job: the services in :mod:`~superscript.cli.services`, the
batch commands in :mod:`~superscript.cli.batch`, the demo in :mod:`~superscript.cli.demo`;
the options they share are declared once, in :mod:`~superscript.cli.options`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Annotated, NoReturn

import typer

from superscript.cli import batch, exits, services
from superscript.cli.demo import command as demo_command
from superscript.cli.options import console

app = typer.Typer(
    help="SuperScript: payment operations that happen exactly once per order.",
    epilog=(
        "Exit codes: 0 done (a service stopped by SIGTERM or Ctrl-C included), 1 an error, "
        "2 bad usage or settings, 130 interrupted before it could stop cleanly."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # Pinned: the options' help escapes their "\[default: ...]" from rich markup.
    rich_markup_mode="rich",
)


def version() -> str:
    """The installed package's version."""
    try:
        return metadata.version("superscript")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def _print_version(wanted: bool) -> None:
    if wanted:
        console.print(f"superscript {version()}", highlight=False)
        raise typer.Exit(exits.OK)


@app.callback()
def _root(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the installed version and exit.",
            is_eager=True,
            callback=_print_version,
        ),
    ] = False,
) -> None:
    # No docstring: the app's help above is the command's.
    pass


services.register(app)
app.command("demo")(demo_command)
app.add_typer(batch.app, name="batch")


def main() -> NoReturn:
    """The console script: run the command, then exit with its own code (see ``exits``)."""
    exits.run(app)
