"""Running ``superscript`` commands as real processes in tests, and waiting on them."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from superscript.devserver import port_open

SUPERSCRIPT = Path(sys.executable).parent / "superscript"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def service_env(**values: str) -> dict[str, str]:
    """The test process's environment without any SUPERSCRIPT_/TEMPORAL_ variable, plus ours."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("SUPERSCRIPT_", "TEMPORAL_"))
    }
    env.update(values)
    return env


@dataclass
class Service:
    """One ``superscript`` process, its log file, and how to stop it."""

    name: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no goodbye, exactly as a crashed machine would leave it."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=10)

    async def terminate(self, grace: float = 40.0) -> int:
        """SIGTERM, then the exit code; fails the test if it outlives ``grace`` seconds."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + grace
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                self.process.kill()
                raise AssertionError(f"{self.name} ignored SIGTERM for {grace}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        return self.process.returncode


def start(name: str, args: list[str], env: Mapping[str, str], log_dir: Path) -> Service:
    log = log_dir / f"{name}.log"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(SUPERSCRIPT), *args],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=log_dir,
        )
    return Service(name=name, process=process, log=log)


async def wait_healthy(base_url: str, service: Service, seconds: float = 90.0) -> None:
    """Poll /healthz until it answers 200; fail with the log if the process dies or stalls."""
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as http:
        while True:
            if service.process.poll() is not None:
                raise AssertionError(f"{service.name} exited early:\n{service.output()}")
            try:
                if (await http.get("/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{service.name} not healthy in {seconds}s:\n{service.output()}"
                )
            await asyncio.sleep(0.1)


async def wait_for_file(path: Path, service: Service, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if service.process.poll() is not None:
            raise AssertionError(f"{service.name} exited early:\n{service.output()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear in {seconds}s:\n{service.output()}")
        await asyncio.sleep(0.05)


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    what: str,
    seconds: float,
    *watched: Service,
    interval: float = 0.1,
) -> None:
    """Poll ``check`` until it is true; fail (with the logs of ``watched``) past the deadline.

    A watched process that exits meanwhile fails the wait at once, with its log.
    """
    deadline = time.monotonic() + seconds
    while not await check():
        for service in watched:
            if service.process.poll() is not None:
                raise AssertionError(
                    f"{service.name} exited ({service.process.returncode}) while waiting for "
                    f"{what}:\n{service.output()[-5000:]}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(f"--- {s.name}:\n{s.output()[-3000:]}" for s in watched)
            raise AssertionError(f"{what}: not within {seconds}s\n{logs}")
        await asyncio.sleep(interval)


async def wait_for_log(service: Service, text: str, seconds: float = 60.0) -> None:
    """Until ``text`` appears in the service's log (a readiness line, say)."""

    async def logged() -> bool:
        return text in service.output()

    await wait_until(logged, f"{text!r} in {service.name}'s log", seconds, service)


def start_dev_server(name: str, data_dir: Path, port: int, ui_port: int, log_dir: Path) -> Service:
    """``superscript dev-server`` on the given ports, persistent under ``data_dir``."""
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_TEMPORAL_PORT=str(port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(ui_port),
    )
    return start(name, ["dev-server"], env, log_dir)


async def wait_dev_server(service: Service, port: int, seconds: float = 90.0) -> None:
    async def listening() -> bool:
        return await port_open(port)

    await wait_until(listening, f"{service.name} listening on {port}", seconds, service)


WORKER_READY = "worker polling task queue"


@dataclass
class Stack:
    """``superscript api`` and workers as separate processes on one Temporal and ledger.

    Every start gets its own log file (``api-2.log``, ``worker-5.log``), so the log of a
    killed process stays readable after its replacement starts.
    """

    log_dir: Path
    env: dict[str, str]
    api_port: int
    api: Service | None = None
    workers: list[Service] = field(default_factory=list)
    starts: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    retired: list[Service] = field(default_factory=list)

    @classmethod
    def configure(
        cls,
        log_dir: Path,
        *,
        temporal_address: str,
        database_url: str,
        data_dir: Path,
        task_queue: str,
        **extra_env: str,
    ) -> Stack:
        api_port = free_port()
        env = service_env(
            TEMPORAL_ADDRESS=temporal_address,
            SUPERSCRIPT_DATABASE_URL=database_url,
            SUPERSCRIPT_DATA_DIR=str(data_dir),
            SUPERSCRIPT_TASK_QUEUE=task_queue,
            SUPERSCRIPT_PORT=str(api_port),
            **extra_env,
        )
        log_dir.mkdir(parents=True, exist_ok=True)
        return cls(log_dir=log_dir, env=env, api_port=api_port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _start(self, role: str, extra_env: Mapping[str, str] | None = None) -> Service:
        return start(
            f"{role}-{next(self.starts)}", [role], {**self.env, **(extra_env or {})}, self.log_dir
        )

    def start_api(self) -> Service:
        self.api = self._start("api")
        return self.api

    def start_worker(self, extra_env: Mapping[str, str] | None = None) -> Service:
        worker = self._start("worker", extra_env)
        self.workers.append(worker)
        return worker

    def replace_worker(self, slot: int) -> Service:
        """SIGKILL the worker in ``slot`` and start a fresh one in its place at once."""
        old = self.workers[slot]
        old.kill()
        self.retired.append(old)
        self.workers[slot] = self._start("worker")
        return self.workers[slot]

    async def restart_api(self, grace: float = 40.0) -> int:
        """SIGTERM the API, wait for its exit code, start a new one and wait until healthy."""
        assert self.api is not None
        code = await self.api.terminate(grace)
        self.retired.append(self.api)
        await wait_healthy(self.base_url, self.start_api())
        return code

    async def wait_ready(self, seconds: float = 90.0) -> None:
        """The API answers /healthz and every worker is polling."""
        assert self.api is not None
        await wait_healthy(self.base_url, self.api, seconds)
        for worker in self.workers:
            await wait_for_log(worker, WORKER_READY, seconds)

    def services(self) -> list[Service]:
        return [*([self.api] if self.api else []), *self.workers, *self.retired]

    async def stop(self, grace: float = 40.0) -> dict[str, int]:
        """SIGTERM the API and the workers; their exit codes by name."""
        codes: dict[str, int] = {}
        for service in [*([self.api] if self.api else []), *self.workers]:
            codes[service.name] = await service.terminate(grace)
        return codes

    def kill_all(self) -> None:
        for service in self.services():
            kill_tree(service)

    def logs(self, tail: int = 4000) -> str:
        return "\n".join(f"--- {s.name}:\n{s.output()[-tail:]}" for s in self.services())


def kill_tree(service: Service) -> None:
    """SIGKILL a service and everything it started (even in sessions of their own)."""
    try:
        descendants = psutil.Process(service.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        descendants = []
    service.kill()
    for child in descendants:
        with contextlib.suppress(psutil.NoSuchProcess):
            child.kill()
