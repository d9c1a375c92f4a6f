"""The CLI as the tests run it in this process, and the CSV header of a fee batch."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from superscript.cli import app

FEE_HEADER = "order_id,account_id,amount\n"


async def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the command in this process (quicker than a new one), off the event loop: its
    exit code and its output."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output
