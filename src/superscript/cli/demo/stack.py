"""The demo's own stack: ``superscript up`` on a fresh data dir, when nothing answers at the
API address on this machine, stopped again at the end (on the shared process harness).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from rich.console import Console

from superscript.processes import Service, service_env, start, wait_healthy
from superscript.settings import Settings

STACK_START_SECONDS: Final = 120.0
STACK_STOP_SECONDS: Final = 45.0
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
"""Where the demo may start a stack of its own: this machine."""


def _environment(
    host: str, port: int, data_dir: Path, settings: Settings, tag: str
) -> dict[str, str]:
    # The user's other SUPERSCRIPT_* (a token, say) stay; the ledger lives in the new dir.
    return service_env(
        ("SUPERSCRIPT_DATABASE_URL",),
        SUPERSCRIPT_HOST=host,
        SUPERSCRIPT_PORT=str(port),
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_TASK_QUEUE=f"superscript-demo-{tag}",
        SUPERSCRIPT_TEMPORAL_PORT=str(settings.temporal_port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
    )


@contextlib.asynccontextmanager
async def own_stack(
    api: str, settings: Settings, console: Console, tag: str
) -> AsyncIterator[Service]:
    """``superscript up`` on a fresh data dir at the API's address; SIGTERM at the end."""
    parts = urlsplit(api)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    data_dir = Path(tempfile.mkdtemp(prefix="superscript-demo-"))
    console.print(
        f"Nothing answers at {api}: starting a stack of its own (superscript up) with data "
        f"dir [bold]{data_dir}[/bold] (its log: {data_dir / 'up.log'}).",
        highlight=False,
    )
    # Its own session: Ctrl-C reaches the demo, and the demo stops the stack. It runs in
    # the user's directory, so a relative SUPERSCRIPT_SCRIPTS_DIR still means the same.
    stack = start(
        "up", ["up"], _environment(host, port, data_dir, settings, tag), data_dir, cwd=Path.cwd()
    )
    try:
        yield stack
    finally:
        if stack.running:
            console.print("Stopping the demo's own stack (SIGTERM)…")
            await stack.stop(STACK_STOP_SECONDS)
        console.print(f"Its data (payments.log, ledger) stays in {data_dir}.", highlight=False)


async def wait_until_healthy(api: str, stack: Service) -> None:
    """Until the stack's API answers healthy; :class:`NotReady` if it exits or is slow."""
    await wait_healthy(api, stack, STACK_START_SECONDS, interval=0.25)
