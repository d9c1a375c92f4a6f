"""One data dir, one stack, one ledger: checked before any part of a stack starts.

The data dir holds the embedded Temporal history (``temporal.db``). Two dev servers on one
history corrupt each other's view of it, and a history made with one ledger answers for
another (``200 charged`` for an order the new ledger never saw). So:

- ``up`` and ``dev-server`` hold an exclusive lock on ``<data-dir>/superscript.lock`` for
  their whole life (``lock``);
- every port a command will bind is tried first, by binding it as the server will
  (``ports``);
- ``<data-dir>/ledger.json`` records the ledger the data dir was first used with, and a
  start with another ledger is refused, naming both (``record``).

Every refusal is a ``StartRefused`` (``refusals``); what it shows of URLs and commands,
passwords hidden, is in ``shown``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from superscript.datadir.lock import LOCK_FILE, DataDirLock, acquire, describe_holder, locked
from superscript.datadir.ports import Port, check_ports, service_ports
from superscript.datadir.record import (
    DEFAULT_LEDGER_FILE,
    LEDGER_RECORD,
    TEMPORAL_DB,
    LedgerRecord,
    check_ledger,
    read_record,
)
from superscript.datadir.refusals import DataDirInUse, LedgerMismatch, PortInUse, StartRefused
from superscript.datadir.shown import hide_password, ledger_url, this_command

__all__ = [
    "DEFAULT_LEDGER_FILE",
    "LEDGER_RECORD",
    "LOCK_FILE",
    "TEMPORAL_DB",
    "DataDirInUse",
    "DataDirLock",
    "LedgerMismatch",
    "LedgerRecord",
    "Port",
    "PortInUse",
    "StartRefused",
    "acquire",
    "check_ledger",
    "check_ports",
    "claim",
    "describe_holder",
    "hide_password",
    "ledger_url",
    "locked",
    "read_record",
    "service_ports",
    "this_command",
]


def claim(data_dir: Path, ports: Sequence[Port]) -> DataDirLock:
    """Lock the data dir, then check the ports; the lock is let go if one is taken."""
    lock = acquire(data_dir)
    try:
        check_ports(ports)
    except BaseException:
        lock.release()
        raise
    return lock
