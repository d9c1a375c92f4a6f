"""Run one registered script as a subprocess, with bounded output, a timeout and heartbeats.

Why it is built this way:

- ``exec`` with an argv list, never a shell: arguments come from API callers.
- The script leads its own process group, so a timeout or a cancellation can kill every
  process it started, and nothing it left behind outlives the run.
- A minimal environment: the service's secrets (``SUPERSCRIPT_API_TOKEN``, database
  URLs, Temporal keys) must never reach an operator's script.
- Output is kept in bounded tail buffers fed by a protocol, so a script printing
  gigabytes costs 64 KiB per stream, and the end of a run is the exit of the script, not
  the end of its pipes: a grandchild that escaped the group and holds them open can't
  make a run hang (``asyncio.subprocess.Process.wait()`` waits for the pipes too).
- Starting the script is shielded from cancellation: asyncio cancelled mid-start kills
  only the script's own pid and then waits for its pipes to close, which a background
  child of the script holds open for as long as it lives (a 300 s hang in the tests, a
  worker that never lets go of its activity in production). We let the start finish,
  kill the whole group, and only then let the cancellation through.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Final

from pydantic import BaseModel

from superscript.scripts.models import script_idempotency_key
from superscript.scripts.registry import ScriptSpec
from superscript.temporal.heartbeat import beating

logger = logging.getLogger(__name__)

OUTPUT_LIMIT_BYTES: Final = 64 * 1024
"""Each of stdout and stderr keeps only its last this many bytes."""

KILL_GRACE_SECONDS: Final = 2.0
"""Between SIGTERM and SIGKILL to the script's process group."""

EXIT_WAIT_SECONDS: Final = 5.0
"""How long to wait for the script to be reaped after SIGKILL before giving up."""

PIPE_DRAIN_SECONDS: Final = 1.0
"""After the script's group is gone, how long to wait for its last output to arrive."""

DEFAULT_PATH: Final = "/usr/local/bin:/usr/bin:/bin"

ENV_ALLOW_LIST: Final = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "TZ",
    "TMPDIR",
    "USER",
    "LOGNAME",
    "SHELL",
)
"""The only variables of the service's environment a script inherits."""


class RunResult(BaseModel):
    """What one run of a script did.

    ``exit_code`` is ``None`` only when the run was killed for its timeout; a script that
    died of a signal on its own reports the negative signal number, as ``subprocess`` does.
    """

    exit_code: int | None
    stdout: str
    stderr: str
    timed_out: bool
    killed_reason: str | None
    duration_seconds: float


def script_env(
    spec: ScriptSpec,
    *,
    order_id: str,
    attempt: int,
    extra_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The whole environment of a run: the allow-list, the run's identity, then extras."""
    env = {key: os.environ[key] for key in ENV_ALLOW_LIST if key in os.environ}
    env.setdefault("PATH", DEFAULT_PATH)
    env["SUPERSCRIPT_ORDER_ID"] = order_id
    env["SUPERSCRIPT_IDEMPOTENCY_KEY"] = script_idempotency_key(spec.name, order_id)
    env["SUPERSCRIPT_ATTEMPT"] = str(attempt)
    env["SUPERSCRIPT_SCRIPT"] = spec.name
    if extra_env:
        env.update(extra_env)
    return env


class _TailBuffer:
    """The last ``limit`` bytes written to it, whatever the total."""

    def __init__(self, limit: int = OUTPUT_LIMIT_BYTES) -> None:
        self._limit = limit
        self._buf = bytearray()

    def append(self, data: bytes) -> None:
        if len(data) >= self._limit:
            self._buf[:] = data[-self._limit :]
            return
        self._buf += data
        excess = len(self._buf) - self._limit
        if excess > 0:
            del self._buf[:excess]  # O(1) amortised at the front of a bytearray

    def text(self) -> str:
        return self._buf.decode("utf-8", errors="replace")


class _RunProtocol(asyncio.SubprocessProtocol):
    """Collects output into tail buffers and signals exit and end of output separately."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.buffers = {1: _TailBuffer(), 2: _TailBuffer()}
        self.exited: asyncio.Future[None] = loop.create_future()
        self.pipes_closed: asyncio.Future[None] = loop.create_future()
        self._open_pipes = {1, 2}

    def pipe_data_received(self, fd: int, data: bytes | str) -> None:
        buffer = self.buffers.get(fd)
        if buffer is not None:
            buffer.append(data.encode() if isinstance(data, str) else data)

    def pipe_connection_lost(self, fd: int, exc: Exception | None) -> None:
        self._open_pipes.discard(fd)
        if not self._open_pipes and not self.pipes_closed.done():
            self.pipes_closed.set_result(None)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass  # nothing left in the group
    except PermissionError as exc:  # a member changed user (setuid); nothing we can do
        logger.warning("cannot send %s to process group %d: %s", sig.name, pgid, exc)


async def _wait_for(fut: asyncio.Future[None], seconds: float) -> bool:
    """Wait up to ``seconds`` for ``fut`` without cancelling it; whether it is done."""
    if not fut.done():
        await asyncio.wait({fut}, timeout=seconds)
    return fut.done()


async def _terminate_group(pgid: int, proto: _RunProtocol, grace: float) -> None:
    """SIGTERM the group, give the script ``grace`` seconds, then SIGKILL whatever is left."""
    try:
        if grace > 0 and not proto.exited.done():
            _signal_group(pgid, signal.SIGTERM)
            await _wait_for(proto.exited, grace)
    finally:
        # Always, even if cancelled meanwhile: children may outlive or ignore SIGTERM.
        _signal_group(pgid, signal.SIGKILL)
    if not await _wait_for(proto.exited, EXIT_WAIT_SECONDS):
        logger.error("script process %d not reaped %.0fs after SIGKILL", pgid, EXIT_WAIT_SECONDS)


async def _start(
    spec: ScriptSpec,
    args: list[str],
    proto: _RunProtocol,
    *,
    env: Mapping[str, str],
    kill_grace: float,
) -> asyncio.SubprocessTransport:
    """Start the script in a process group of its own; a cancellation kills the group.

    ``loop.subprocess_exec`` forks at once but connects the pipes over a few more loop
    iterations; cancelled in between, it SIGKILLs the script's pid alone and then awaits
    the pipes' end, which never comes while a child of the script holds them. So the
    start runs in a task of its own that no cancellation reaches; once it is done, a
    cancellation that arrived meanwhile kills and reaps the whole group, then propagates.
    """
    loop = asyncio.get_running_loop()
    starting = asyncio.ensure_future(
        loop.subprocess_exec(
            lambda: proto,
            str(spec.path),
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            cwd=spec.path.parent,
            env=dict(env),
            start_new_session=True,  # the script's pid is its process group id
        )
    )
    cancelled: asyncio.CancelledError | None = None
    while not starting.done():
        try:
            await asyncio.wait({starting})
        except asyncio.CancelledError as exc:
            cancelled = exc  # the start is not cancelled; we still owe the caller this
    if cancelled is None:
        transport, _ = starting.result()
        return transport
    if starting.exception() is None:
        transport, _ = starting.result()
        try:
            await _terminate_group(transport.get_pid(), proto, kill_grace)
        finally:
            transport.close()
    raise cancelled


async def run_script(
    spec: ScriptSpec,
    args: list[str],
    *,
    order_id: str,
    attempt: int,
    timeout: float | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_interval: float = 1.0,
    extra_env: Mapping[str, str] | None = None,
    kill_grace: float = KILL_GRACE_SECONDS,
) -> RunResult:
    """Run ``spec`` once with ``args`` as its argv and report what it did.

    ``timeout`` defaults to the script's own; past it the script's whole process group is
    killed and the result has ``exit_code`` ``None`` and ``timed_out`` set. ``heartbeat``
    is called every ``heartbeat_interval`` seconds while the script runs (an activity
    passes ``activity.heartbeat``). If the calling task is cancelled, the group is killed
    and reaped before ``CancelledError`` propagates. Raises ``OSError`` if the script
    can't be started at all (removed, not executable, bad interpreter line).
    """
    limit = spec.timeout_seconds if timeout is None else timeout
    if not limit > 0:
        raise ValueError(f"timeout must be positive, got {limit!r}")
    if heartbeat is not None and not heartbeat_interval > 0:
        raise ValueError(f"heartbeat_interval must be positive, got {heartbeat_interval!r}")

    proto = _RunProtocol(asyncio.get_running_loop())
    started = time.monotonic()
    transport = await _start(
        spec,
        args,
        proto,
        env=script_env(spec, order_id=order_id, attempt=attempt, extra_env=extra_env),
        kill_grace=kill_grace,
    )
    try:
        exiting = _wait_for(proto.exited, limit)
        if heartbeat is not None:
            exiting = beating(exiting, heartbeat_interval, heartbeat)
        timed_out = not await _until_the_group_is_gone(
            transport.get_pid(), proto, exiting, kill_grace
        )
    finally:
        transport.close()

    return RunResult(
        exit_code=None if timed_out else transport.get_returncode(),
        stdout=proto.buffers[1].text(),
        stderr=proto.buffers[2].text(),
        timed_out=timed_out,
        killed_reason=f"timeout after {limit:g}s" if timed_out else None,
        duration_seconds=time.monotonic() - started,
    )


async def _until_the_group_is_gone(
    pgid: int, proto: _RunProtocol, exiting: Awaitable[bool], kill_grace: float
) -> bool:
    """Await ``exiting`` (whether the script exited in time), then kill what is left.

    Whatever ends the wait, nothing of the group outlives it: a script that exited on its
    own has its background children killed, one past its time the whole group, and a
    cancellation (the worker shutting down) or a failing heartbeat kills the group and
    reaps the script before it propagates. Then its last output is read.
    """
    try:
        exited = await exiting
        if exited:
            _signal_group(pgid, signal.SIGKILL)
        else:
            await _terminate_group(pgid, proto, kill_grace)
    except BaseException:
        await _terminate_group(pgid, proto, kill_grace)
        raise
    # The group is dead, so its pipes close unless an escapee holds them: bounded wait.
    await _wait_for(proto.pipes_closed, PIPE_DRAIN_SECONDS)
    return exited
