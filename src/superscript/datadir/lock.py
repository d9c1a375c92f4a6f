"""The data dir's lock: one ``flock`` held for the life of ``up`` or ``dev-server``.

A second holder is refused at once, naming the first. The kernel releases a ``flock``
when its holders die, so a killed process leaves no stale lock. The embedded dev server
inherits the lock: a ``temporal`` child left running after its parent was killed still
holds the data dir, as it still writes its history.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from superscript.datadir.refusals import DataDirInUse
from superscript.datadir.shown import this_command

LOCK_FILE = "superscript.lock"


@dataclass
class DataDirLock:
    """An exclusive ``flock`` on the data dir, and who holds it (written into the file)."""

    path: Path
    fd: int
    holder: dict[str, Any] = field(default_factory=dict)

    def note(self, **facts: Any) -> None:
        """Add facts about the holder (the dev server's pid) for a refused starter to read."""
        self.holder.update(facts)
        data = (json.dumps(self.holder) + "\n").encode()
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, data, 0)

    def release(self) -> None:
        """Let go (the kernel does it too, when the last holder exits)."""
        if self.fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self.fd, 0)
        os.close(self.fd)
        self.fd = -1


def acquire(data_dir: Path, command: str | None = None) -> DataDirLock:
    """Lock ``data_dir`` for this process or refuse at once: the lock is never waited for."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    # os.open's descriptors are not inherited (PEP 446): only the dev server gets it.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise
        raise DataDirInUse(
            f"data dir {data_dir.resolve()} is in use by {describe_holder(path)}; it starts "
            "nothing while another stack uses it. Stop that one first, or use another "
            "--data-dir."
        ) from None
    lock = DataDirLock(path=path, fd=fd)
    lock.note(
        pid=os.getpid(),
        command=command or this_command(),
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    return lock


@contextlib.contextmanager
def locked(data_dir: Path, command: str | None = None) -> Iterator[DataDirLock]:
    lock = acquire(data_dir, command)
    try:
        yield lock
    finally:
        lock.release()


def _alive(pid: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def describe_holder(path: Path) -> str:
    """Who holds the lock at ``path``, from what the holder wrote into it."""
    try:
        holder = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    if not isinstance(holder, dict) or "pid" not in holder:
        return "another process (it has not written its pid yet)"
    pid, command = holder.get("pid"), holder.get("command", "?")
    text = f"pid {pid} ({command}, since {holder.get('started_at', '?')})"
    temporal_pid = holder.get("temporal_pid")
    if not _alive(pid) and _alive(temporal_pid):
        text += (
            f"; that process is gone, but the Temporal dev server it started (pid "
            f"{temporal_pid}) still runs on this data dir and holds it: stop that process"
        )
    return text
