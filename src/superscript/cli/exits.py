"""How a ``superscript`` process ends: its exit codes, its signals, and ``os._exit``.

Every command returns its own exit code, a stop signal included (SIGTERM is handled as
SIGINT is), and the process then leaves through ``os._exit`` once it has flushed: see
:func:`leave` for why. ``tests/test_stop_loops.py`` and ``tests/test_shutdown.py`` hold
this to it.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import Any, Final, NoReturn

OK: Final = 0
"""Done; a service stopped by SIGTERM or Ctrl-C included."""
FAILED: Final = 1
"""An error, or something that did not show or do what it should."""
INVALID: Final = 2
"""Bad usage, settings or input: nothing was done."""
INTERRUPTED: Final = 130
"""The exit code of a command interrupted (SIGINT or SIGTERM) before it could stop cleanly."""


def interrupt(signum: int, frame: FrameType | None) -> None:
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


def exit_code(exc: SystemExit) -> int:
    """The process's exit code for ``exc``; a message in its place is printed, and is 1."""
    if exc.code is None:
        return OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return FAILED


def leave(code: int) -> NoReturn:
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


def run(command: Callable[[], Any]) -> NoReturn:
    """Run the command, then exit with its own code, every time.

    Exit codes: the command's own (``typer.Exit``, 0 for a service stopped by SIGTERM or
    SIGINT), 2 for a usage error, 130 when interrupted before it could stop cleanly, 1 for
    an unexpected error (its traceback printed).
    """
    signal.signal(signal.SIGTERM, interrupt)
    try:
        command()
        code = OK
    except SystemExit as exc:
        code = exit_code(exc)
    except KeyboardInterrupt:
        code = INTERRUPTED
    except BaseException:
        traceback.print_exc()
        code = FAILED
    leave(code)
