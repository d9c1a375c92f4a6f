"""Fail points: let a test freeze a worker at one exact point, then kill it there.

Set ``SUPERSCRIPT_FAILPOINTS=name[,name]`` and ``SUPERSCRIPT_FAILPOINT_DIR``: on reaching a
named point the process adds its pid as a line of ``<dir>/<name>.hit`` and waits forever,
so a test can SIGKILL it at that moment. Unset (always, in production) each point costs
one dict lookup.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path


async def failpoint(name: str) -> None:
    names = os.environ.get("SUPERSCRIPT_FAILPOINTS")
    if not names or name not in names.split(","):
        return
    marker_dir = Path(os.environ.get("SUPERSCRIPT_FAILPOINT_DIR", "."))
    marker_dir.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 - test-only path
    # One line per process that froze here, so a test can tell (and kill) each of them.
    with (marker_dir / f"{name}.hit").open("a") as marker:
        marker.write(f"{os.getpid()}\n")
    await asyncio.Event().wait()
