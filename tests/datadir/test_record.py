"""A data dir remembers the ledger it was first used with and refuses another (issue 9,
point 3), so its Temporal history never answers for a ledger that never saw the order."""

from __future__ import annotations

from pathlib import Path

import pytest

from superscript import datadir
from superscript.ledger import Ledger
from tests.conftest import PG_PASSWORD, with_password


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
