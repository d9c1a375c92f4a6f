"""One data dir, one stack, one ledger (issue 9, points 2 and 3): the lock, the port checks
and the ledger record, in process. The real commands are in ``system/test_datadir_commands``.

A second ``up`` or ``dev-server`` on a data dir in use is refused at once and starts
nothing; every port is checked (by binding) before anything starts; a data dir remembers
its ledger and refuses another, so its Temporal history never answers for a ledger that
never saw the order.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from superscript import datadir
from superscript.devserver import port_open
from superscript.ledger import Ledger
from tests.conftest import PG_PASSWORD, with_password
from tests.processes import (
    free_port,
)

# --- the lock, in-process and in a real holder process -----------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from superscript import datadir
    lock = datadir.acquire(Path(sys.argv[1]), command="the test's holder")
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_held_data_dir_is_refused_naming_the_holder_and_freed_by_sigkill(
    tmp_path: Path,
) -> None:
    with holder(tmp_path) as process:
        with pytest.raises(datadir.DataDirInUse) as refusal:
            datadir.acquire(tmp_path)
        assert f"pid {process.pid} (the test's holder" in str(refusal.value)
        # SIGKILL: no goodbye, the lock file stays behind with the dead holder's pid.
        process.kill()
        process.wait()
    assert str(process.pid) in (tmp_path / datadir.LOCK_FILE).read_text()
    lock = datadir.acquire(tmp_path, command="next")
    try:
        assert json.loads((tmp_path / datadir.LOCK_FILE).read_text())["pid"] != process.pid
    finally:
        lock.release()
    datadir.acquire(tmp_path).release()


def test_ports_are_checked_by_binding(tmp_path: Path) -> None:
    # Bound but not listening: a connection test finds nothing there, yet no server can
    # bind it. Only binding tells.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert not asyncio.run(port_open(port))
        with pytest.raises(datadir.PortInUse) as refusal:
            datadir.check_ports(
                [
                    datadir.Port("API", "127.0.0.1", free_port()),
                    datadir.Port("Temporal gRPC", "127.0.0.1", port),
                ]
            )
    assert f"port {port} on 127.0.0.1 (the Temporal gRPC) is already in use" in str(refusal.value)
    same = free_port()
    with pytest.raises(datadir.PortInUse, match=f"port {same} is given both for the API"):
        datadir.check_ports(
            [
                datadir.Port("API", "127.0.0.1", same),
                datadir.Port("Temporal Web UI", "127.0.0.1", same),
            ]
        )
    # Free again once let go; port 0 (the system picks) is never in use.
    datadir.check_ports([datadir.Port("API", "127.0.0.1", 0), datadir.Port("x", "127.0.0.1", port)])


# --- the ledger record, on both databases -----------------------------------------------


async def test_a_data_dir_keeps_the_ledger_it_was_first_used_with(
    tmp_path: Path, db_url: str, pg_url: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A command that does not use the data dir's history (TEMPORAL_ADDRESS set) records
    # nothing; the first one that does records the ledger and its identity.
    await datadir.check_ledger(data_dir, db_url, record=False)
    assert datadir.read_record(data_dir) is None
    await datadir.check_ledger(data_dir, db_url, record=True)
    record = datadir.read_record(data_dir)
    assert record is not None
    ledger = await Ledger.open(db_url)
    try:
        assert record.ledger_id == await ledger.ledger_id()
    finally:
        await ledger.close()
    assert record.url == datadir.ledger_url(db_url)
    # The same ledger again, recording or not: fine, and the record is unchanged.
    await datadir.check_ledger(data_dir, db_url, record=True)
    await datadir.check_ledger(data_dir, db_url, record=False)
    assert datadir.read_record(data_dir) == record

    # Another ledger, a fresh SQLite file or the other database: refused, naming both.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    other = fresh if db_url.startswith("postgresql") else with_password(pg_url)
    for url in (fresh, other):
        with pytest.raises(datadir.LedgerMismatch) as refusal:
            await datadir.check_ledger(data_dir, url, record=True)
        message = str(refusal.value)
        assert record.url in message and datadir.ledger_url(url) in message, message
        assert PG_PASSWORD not in message
    assert not (tmp_path / "fresh.db").exists(), "a refused check created the ledger"
    assert datadir.read_record(data_dir) == record


async def test_a_data_dir_from_before_records_belongs_to_its_own_sqlite_ledger(
    tmp_path: Path, pg_url: str
) -> None:
    """A data dir used before this version (a Temporal history and its SQLite ledger, no
    record): the issue's scenario must be refused there too."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    own = f"sqlite:///{data_dir / 'ledger.db'}"
    await (await Ledger.open(own)).close()
    (data_dir / "temporal.db").write_bytes(b"")
    with pytest.raises(datadir.LedgerMismatch, match="before ledgers were recorded"):
        await datadir.check_ledger(data_dir, pg_url, record=True)
    assert datadir.read_record(data_dir) is None
    await datadir.check_ledger(data_dir, own, record=True)
    assert datadir.read_record(data_dir) is not None
