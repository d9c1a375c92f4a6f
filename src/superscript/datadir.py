"""One data dir, one stack, one ledger: checked before any part of a stack starts.

The data dir holds the embedded Temporal history (``temporal.db``). Two dev servers on one
history corrupt each other's view of it, and a history made with one ledger answers for
another (``200 charged`` for an order the new ledger never saw). So:

- ``up`` and ``dev-server`` hold an exclusive lock on ``<data-dir>/superscript.lock`` for
  their whole life (a second one is refused at once, naming the holder). The kernel
  releases a ``flock`` when its holders die, so a killed process leaves no stale lock.
  The embedded dev server inherits the lock: a ``temporal`` child left running after its
  parent was killed still holds the data dir, as it still writes its history.
- every port a command will bind is tried first, by binding it as the server will;
- ``<data-dir>/ledger.json`` records the ledger the data dir was first used with (its URL,
  password hidden, and the identity the database itself holds); a start with another
  ledger is refused, naming both.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import shlex
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from superscript.settings import Settings

LOCK_FILE = "superscript.lock"
LEDGER_RECORD = "ledger.json"
TEMPORAL_DB = "temporal.db"
DEFAULT_LEDGER_FILE = "ledger.db"


class StartRefused(RuntimeError):
    """A command refuses to start; nothing of it has started. The message says why."""


class DataDirInUse(StartRefused):
    pass


class PortInUse(StartRefused):
    pass


class LedgerMismatch(StartRefused):
    pass


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``, fit to print and to record."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _hide_passwords_in(url)


def _hide_passwords_in(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it hidden."""
    return re.sub(r"(://[^:/@\s]*:)[^/\s]*@", r"\1***@", text)


def ledger_url(url: str) -> str:
    """``url`` as printed and recorded: password hidden, a SQLite file by its full path."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return hide_password(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return hide_password(parsed.render_as_string(hide_password=False))


def this_command() -> str:
    """How this process was started, as a user would type it (passwords hidden)."""
    return _hide_passwords_in(shlex.join(["superscript", *sys.argv[1:]]))


# --- the lock ---------------------------------------------------------------------------


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


# --- ports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Port:
    """One port a command will bind, and what for (named in a refusal)."""

    purpose: str
    host: str
    port: int


def check_ports(ports: Sequence[Port]) -> None:
    """Refuse unless every port can be bound now, as its server will bind it.

    A connection test alone misses a port that is bound but not (yet) listening, or held
    on another address of the same port; binding is what the real server will do, with
    ``SO_REUSEADDR`` as uvicorn and Temporal set it (so a closed port in TIME_WAIT is free).
    Port 0 (the system picks one) is never in use.
    """
    seen: dict[int, str] = {}
    for wanted in ports:
        if wanted.port == 0:
            continue
        if wanted.port in seen:
            raise PortInUse(
                f"port {wanted.port} is given both for the {seen[wanted.port]} and for the "
                f"{wanted.purpose}; give each its own port"
            )
        seen[wanted.port] = wanted.purpose
        family = socket.AF_INET6 if ":" in wanted.host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((wanted.host, wanted.port))
                sock.listen(1)
            except OSError as exc:
                why = "is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
                raise PortInUse(
                    f"port {wanted.port} on {wanted.host} (the {wanted.purpose}) {why}: "
                    "nothing was started. Stop what uses it or choose another port."
                ) from None


def service_ports(settings: Settings, *, api: bool, temporal: bool) -> list[Port]:
    """The ports a command binds: the API's, and the embedded dev server's (127.0.0.1)."""
    ports = [Port("API", settings.host, settings.port)] if api else []
    if temporal:
        ports.append(Port("Temporal gRPC", "127.0.0.1", settings.temporal_port))
        ports.append(Port("Temporal Web UI", "127.0.0.1", settings.temporal_ui_port))
    return ports


def claim(data_dir: Path, ports: Sequence[Port]) -> DataDirLock:
    """Lock the data dir, then check the ports; the lock is let go if one is taken."""
    lock = acquire(data_dir)
    try:
        check_ports(ports)
    except BaseException:
        lock.release()
        raise
    return lock


# --- the ledger record ------------------------------------------------------------------


class LedgerRecord(BaseModel):
    """``<data-dir>/ledger.json``: the ledger this data dir's Temporal history belongs to."""

    model_config = ConfigDict(frozen=True)

    url: str
    ledger_id: str
    recorded_at: datetime
    recorded_by: str


def read_record(data_dir: Path) -> LedgerRecord | None:
    path = data_dir / LEDGER_RECORD
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        return LedgerRecord.model_validate_json(text)
    except ValidationError as exc:
        raise LedgerMismatch(
            f"{path} is not a ledger record ({exc.error_count()} errors): the data dir can't "
            "tell which ledger it belongs to, so nothing was started. Restore the file, or "
            "use another --data-dir."
        ) from None


def _write_record_once(data_dir: Path, record: LedgerRecord) -> bool:
    """Write the record unless one exists (the first writer wins); whether this one did."""
    path = data_dir / LEDGER_RECORD
    draft = data_dir / f".{LEDGER_RECORD}.{os.getpid()}"
    draft.write_text(record.model_dump_json(indent=2) + "\n")
    try:
        # link() creates the name only if it is absent: a whole file or none, never half.
        os.link(draft, path)
    except FileExistsError:
        return False
    finally:
        draft.unlink()
    return True


def _same_sqlite_file(url: str, path: Path) -> bool:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return False
    return Path(parsed.database).resolve() == path.resolve()


async def _ledger_id_at(url: str) -> str | None:
    from superscript.db.identity import read_ledger_id

    try:
        return await read_ledger_id(url)
    except (OSError, SQLAlchemyError) as exc:
        raise StartRefused(
            f"the ledger {ledger_url(url)} can't be read ({type(exc).__name__}: {exc}); "
            "nothing was started"
        ) from None


def _refuse(data_dir: Path, theirs: str, mine: str, why: str) -> LedgerMismatch:
    return LedgerMismatch(
        f"data dir {data_dir.resolve()} belongs to the ledger {theirs}, and this start names "
        f"{mine} ({why}). Its Temporal history must never answer for another ledger, so "
        f"nothing was started: use --database-url {theirs} with this data dir, or another "
        "--data-dir for the other ledger."
    )


async def check_ledger(data_dir: Path, database_url: str, *, record: bool) -> None:
    """Refuse unless ``database_url`` is the ledger the data dir belongs to.

    With ``record`` (the command uses this data dir's Temporal history) a data dir with no
    record yet records this ledger, opening (and migrating) it to learn its identity. A
    data dir from before records were kept, holding a Temporal history and its own SQLite
    ledger, belongs to that ledger.
    """
    mine = ledger_url(database_url)
    known = read_record(data_dir)
    if known is None:
        legacy = data_dir / DEFAULT_LEDGER_FILE
        if (
            (data_dir / TEMPORAL_DB).is_file()
            and legacy.is_file()
            and not _same_sqlite_file(database_url, legacy)
        ):
            raise _refuse(
                data_dir,
                f"sqlite:///{legacy.resolve()}",
                mine,
                "the data dir holds that ledger and a Temporal history made with it, from "
                "before ledgers were recorded",
            )
        if not record:
            return
        from superscript.ledger import Ledger

        ledger = await Ledger.open(database_url)
        try:
            ledger_id = await ledger.ledger_id()
        finally:
            await ledger.close()
        written = LedgerRecord(
            url=mine,
            ledger_id=ledger_id,
            recorded_at=datetime.now(UTC),
            recorded_by=this_command(),
        )
        if _write_record_once(data_dir, written):
            return
        # Another process recorded first (an API and a worker starting together).
        known = read_record(data_dir)
        assert known is not None
    found = await _ledger_id_at(database_url)
    if found != known.ledger_id:
        why = (
            f"ledger id {found}, not {known.ledger_id}"
            if found is not None
            else "a database with no ledger identity: a new ledger, or one never started "
            "by this version"
        )
        raise _refuse(data_dir, known.url, mine, why)
