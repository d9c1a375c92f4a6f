"""Running ``superscript`` commands as real processes in tests, and waiting on them."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx

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
