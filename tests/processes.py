"""The tests' layer over :mod:`superscript.processes`: the dev server, and a whole stack.

The harness itself (start, wait, stop) is :mod:`superscript.processes`, shared with the
bench and the demo; its names are re-exported here, where the tests have always found them.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from superscript.processes import (
    NotReady,
    Service,
    free_port,
    kill_tree,
    service_env,
    start,
    wait_for_file,
    wait_for_log,
    wait_for_port,
    wait_healthy,
    wait_until,
)

__all__ = [
    "SUPERSCRIPT",
    "WORKER_READY",
    "NotReady",
    "Service",
    "Stack",
    "free_port",
    "kill_tree",
    "service_env",
    "start",
    "start_dev_server",
    "wait_dev_server",
    "wait_for_file",
    "wait_for_log",
    "wait_healthy",
    "wait_until",
]

SUPERSCRIPT = Path(sys.executable).parent / "superscript"
"""The command the tests run (for the ones that start it with asyncio themselves)."""


def start_dev_server(name: str, data_dir: Path, port: int, ui_port: int, log_dir: Path) -> Service:
    """``superscript dev-server`` on the given ports, persistent under ``data_dir``."""
    env = service_env(
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_TEMPORAL_PORT=str(port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(ui_port),
    )
    return start(name, ["dev-server"], env, log_dir)


wait_dev_server = wait_for_port
"""``wait_dev_server(service, port)``: until the dev server accepts connections."""


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

    def replace_worker(self, slot: int, extra_env: Mapping[str, str] | None = None) -> Service:
        """SIGKILL the worker in ``slot`` and start a fresh one in its place at once."""
        old = self.workers[slot]
        old.kill()
        self.retired.append(old)
        self.workers[slot] = self._start("worker", extra_env)
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
