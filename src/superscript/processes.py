"""Running ``superscript`` commands as processes of our own, and waiting on them.

One harness for everything that starts the stack from the outside: the tests, the bench
and the demo's own stack. A process started here runs in a session (and so a process
group) of its own, with its output appended to a log file and an environment built from
explicit values; stopping it is SIGTERM, a grace period, then SIGKILL for its whole tree.
A failed wait raises :class:`NotReady` with the tail of the logs concerned, so the reader
sees why without opening a file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from superscript.devserver import port_open

CONFIG_PREFIXES = ("SUPERSCRIPT_", "TEMPORAL_")
"""What configures a ``superscript`` process: not inherited unless given explicitly."""
LOG_TAIL_CHARS = 5000


class NotReady(Exception):
    """A process exited, or what we waited for did not happen in time."""


def superscript_command() -> list[str]:
    """How to run this installation's ``superscript`` command."""
    beside = Path(sys.executable).parent / "superscript"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("superscript")
    if found:
        return [found]
    return [sys.executable, "-c", "from superscript.cli import main; main()"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(drop: Sequence[str] = CONFIG_PREFIXES, /, **values: str) -> dict[str, str]:
    """This process's environment without the variables ``drop`` names (prefixes), plus ours.

    By default every ``SUPERSCRIPT_``/``TEMPORAL_`` variable goes, so the process is
    configured by ``values`` alone, whatever the caller's shell has set.
    """
    drop = tuple(drop)
    env = {key: value for key, value in os.environ.items() if not key.startswith(drop)}
    env.update(values)
    return env


@dataclass
class Service:
    """One process we started, its log file, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        """The whole log so far."""
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.output().splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the process alone: no goodbye, exactly as a crashed machine would leave it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    async def wait_exit(self, seconds: float) -> int | None:
        """The exit code, or None if the process still runs after ``seconds``."""
        deadline = time.monotonic() + seconds
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(0.05)
        return self.process.returncode

    async def stop(self, grace: float) -> int:
        """SIGTERM, then after ``grace`` seconds SIGKILL for the whole tree; the exit code."""
        code = await self._sigterm(grace)
        if code is None:
            kill_tree(self)
            code = self.process.returncode
        return code

    async def terminate(self, grace: float = 40.0) -> int:
        """SIGTERM, then the exit code; one that outlives ``grace`` is killed and raises."""
        code = await self._sigterm(grace)
        if code is None:
            kill_tree(self)
            raise NotReady(f"{self.name} ignored SIGTERM for {grace}s:\n{self.output()}")
        return code

    async def _sigterm(self, grace: float) -> int | None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.wait_exit(grace)


def start(
    name: str,
    args: Sequence[str],
    env: Mapping[str, str],
    log_dir: Path,
    *,
    cwd: Path | None = None,
    program: Sequence[str] | None = None,
) -> Service:
    """``superscript args`` (or ``program args``) in a new session, logging to ``name.log``.

    The log, in ``log_dir``, is appended to, so a restarted process keeps the story; the
    process runs in ``cwd``, ``log_dir`` unless told otherwise. A session of its own keeps
    the caller's Ctrl-C from reaching it (the caller stops it) and lets :func:`kill_tree`
    SIGKILL its group without touching the caller.
    """
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [*(program if program is not None else superscript_command()), *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_dir if cwd is None else cwd,
            start_new_session=True,
        )
    return Service(name=name, process=process, log=log)


def kill_tree(service: Service) -> None:
    """SIGKILL a service, its process group and everything it started (even in other sessions)."""
    try:
        descendants = psutil.Process(service.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    if service.process.poll() is None:
        # Our own session's group: the pid is the group's id, and nobody else is in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(service.process.pid, signal.SIGKILL)
    service.kill()
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()


def check_alive(*services: Service, what: str = "") -> None:
    """Raise :class:`NotReady` with its log if any of ``services`` has exited."""
    for service in services:
        if service.process.poll() is not None:
            during = f" while waiting for {what}" if what else ""
            raise NotReady(
                f"{service.name} exited ({service.process.returncode}){during}:\n"
                f"{service.output()[-LOG_TAIL_CHARS:]}"
            )


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    seconds: float,
    *watched: Service,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; past the deadline fail with the logs of ``watched``.

    A watched process that exits meanwhile fails the wait at once, with its log.
    """
    deadline = time.monotonic() + seconds
    while not await check():
        check_alive(*watched, what=what)
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name}:\n{s.output()[-3000:]}" for s in watched)
            raise NotReady(f"{what}: not within {seconds}s\n{logs}")
        await asyncio.sleep(interval)


async def wait_healthy(
    base_url: str,
    service: Service,
    seconds: float = 90.0,
    *,
    others: Sequence[Service] = (),
    interval: float = 0.1,
) -> None:
    """Until ``GET base_url/healthz`` answers 200; fails if ``service`` or ``others`` exit."""
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:

        async def healthy() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(
            healthy, f"{service.name} healthy", seconds, service, *others, interval=interval
        )


async def wait_for_file(path: Path, service: Service, seconds: float = 60.0) -> None:
    """Until ``path`` exists (a failpoint's mark, say)."""

    async def exists() -> bool:
        return await asyncio.to_thread(path.exists)

    await wait_until(exists, f"{path} to appear", seconds, service, interval=0.05)


async def wait_for_log(service: Service, text: str, seconds: float = 60.0) -> None:
    """Until ``text`` appears in the service's log (a readiness line, say)."""

    async def logged() -> bool:
        return text in service.output()

    await wait_until(logged, f"{text!r} in {service.name}'s log", seconds, service)


async def wait_for_port(service: Service, port: int, seconds: float = 90.0) -> None:
    """Until something accepts connections on 127.0.0.1:``port`` (a dev server, say)."""

    async def listening() -> bool:
        return await port_open(port)

    await wait_until(listening, f"{service.name} listening on {port}", seconds, service)
