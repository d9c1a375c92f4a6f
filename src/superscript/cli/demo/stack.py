"""The demo's own stack: ``superscript up`` on a fresh data dir, when nothing answers at the
API address on this machine, stopped again at the end.

Kept to this one module so that it can move onto the shared process harness as a whole.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from rich.console import Console

from superscript.cli.http import ApiClient
from superscript.settings import Settings

STACK_START_SECONDS: Final = 120.0
STACK_STOP_SECONDS: Final = 45.0
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where the demo may start a stack of its own: this machine."""


class StackError(Exception):
    """The demo's own stack did not come up."""


def superscript_command() -> list[str]:
    """How to run this installation's ``superscript`` command."""
    beside = Path(sys.executable).parent / "superscript"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("superscript")
    if found:
        return [found]
    return [sys.executable, "-c", "from superscript.cli import main; main()"]


@dataclass
class OwnStack:
    process: asyncio.subprocess.Process
    data_dir: Path
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _environment(
    host: str, port: int, data_dir: Path, settings: Settings, tag: str
) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("SUPERSCRIPT_DATABASE_URL", None)  # the ledger lives in the new data dir
    env.update(
        SUPERSCRIPT_HOST=host,
        SUPERSCRIPT_PORT=str(port),
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_TASK_QUEUE=f"superscript-demo-{tag}",
        SUPERSCRIPT_TEMPORAL_PORT=str(settings.temporal_port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
    )
    return env


@contextlib.asynccontextmanager
async def own_stack(
    api: str, settings: Settings, console: Console, tag: str
) -> AsyncIterator[OwnStack]:
    """``superscript up`` on a fresh data dir at the API's address; SIGTERM at the end."""
    parts = urlsplit(api)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    data_dir = Path(tempfile.mkdtemp(prefix="superscript-demo-"))
    log = data_dir / "up.log"
    console.print(
        f"Nothing answers at {api}: starting a stack of its own (superscript up) with data "
        f"dir [bold]{data_dir}[/bold] (its log: {log}).",
        highlight=False,
    )
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *superscript_command(),
            "up",
            env=_environment(host, port, data_dir, settings, tag),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo; the demo stops the stack
        )
    try:
        yield OwnStack(process=process, data_dir=data_dir, log=log)
    finally:
        if process.returncode is None:
            console.print("Stopping the demo's own stack (SIGTERM)…")
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STACK_STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        console.print(f"Its data (payments.log, ledger) stays in {data_dir}.", highlight=False)


async def wait_until_healthy(api: ApiClient, stack: OwnStack) -> None:
    """Until the stack's API answers healthy; :class:`StackError` if it exits or is slow."""
    deadline = time.monotonic() + STACK_START_SECONDS
    while True:
        if stack.process.returncode is not None:
            raise StackError(
                f"superscript up exited with {stack.process.returncode}:\n{stack.tail()}"
            )
        answer = await api.health()
        if answer is not None and answer.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise StackError(
                f"the stack was not healthy in {STACK_START_SECONDS:.0f} s:\n{stack.tail()}"
            )
        await asyncio.sleep(0.25)
