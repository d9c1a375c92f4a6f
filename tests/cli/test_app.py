"""The ``superscript`` command itself: ``--version``, and each command's own options."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from superscript.cli import app
from tests.processes import SUPERSCRIPT

# The options of the contract each service command uses, and no other.
UP_OPTIONS = {
    "--host",
    "--port",
    "--data-dir",
    "--database-url",
    "--scripts-dir",
    "--temporal-port",
    "--temporal-ui-port",
    "--task-queue",
}
SERVICE_OPTIONS = {
    "up": UP_OPTIONS,
    "dev-server": {"--data-dir", "--temporal-port", "--temporal-ui-port"},
    "worker": {"--data-dir", "--database-url", "--scripts-dir", "--temporal-port", "--task-queue"},
    # Not the Web UI's port: it connects to the embedded server, it does not start it.
    # --worker/--no-worker: whether it hosts a worker on its Temporal client (eager start).
    "api": (UP_OPTIONS - {"--temporal-ui-port"}) | {"--worker"},
}


def _options(command: Any) -> set[str]:
    """The option names of a (Typer's own click) command, ``--help`` aside."""
    return {
        name
        for param in command.params
        if param.param_type_name == "option"
        for name in param.opts
        if name != "--help"
    }


def test_version_is_the_installed_one(clean_env: None) -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.output == f"superscript {metadata.version('superscript')}\n"


def test_the_console_script_and_python_m_run_the_same_command(clean_env: None) -> None:
    for command in ([str(SUPERSCRIPT)], [sys.executable, "-m", "superscript.cli"]):
        done = subprocess.run([*command, "--version"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done
        assert done.stdout == f"superscript {metadata.version('superscript')}\n"


def test_each_service_command_lists_only_the_options_it_uses() -> None:
    commands: Any = typer.main.get_command(app)
    for name, wanted in SERVICE_OPTIONS.items():
        assert _options(commands.commands[name]) == wanted, name


def test_an_option_a_command_does_not_use_is_refused(clean_env: None) -> None:
    result = CliRunner().invoke(app, ["worker", "--port", "8001"])
    assert result.exit_code == 2
    assert "No such option" in result.output


@pytest.mark.parametrize(
    ("command", "defaults"),
    [
        (
            "up",
            [
                "API bind address [SUPERSCRIPT_HOST] [default: 127.0.0.1]",
                "API port [SUPERSCRIPT_PORT] [default: 8000]",
                "[SUPERSCRIPT_DATA_DIR] [default: ./.superscript]",
                "[SUPERSCRIPT_DATABASE_URL] [default: sqlite:///<data-dir>/ledger.db]",
                "[SUPERSCRIPT_SCRIPTS_DIR] [default: the bundled example scripts]",
                "[SUPERSCRIPT_TEMPORAL_PORT] [default: 7233]",
                "[SUPERSCRIPT_TEMPORAL_UI_PORT] [default: 8233]",
                "[SUPERSCRIPT_TASK_QUEUE] [default: superscript]",
            ],
        ),
        ("demo", ["[default: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT]"]),
        ("batch status", ["[default: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT]"]),
    ],
)
def test_help_shows_the_contracts_defaults(
    clean_env: None, command: str, defaults: list[str]
) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"], env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    for default in defaults:
        assert default in result.output, result.output
