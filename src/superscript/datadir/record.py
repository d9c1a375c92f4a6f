"""``<data-dir>/ledger.json``: the ledger a data dir's Temporal history belongs to.

It records the ledger the data dir was first used with (its URL, password hidden, and the
identity the database itself holds); a start with another ledger is refused, naming both.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from superscript.datadir.refusals import LedgerMismatch, StartRefused
from superscript.datadir.shown import ledger_url, this_command

LEDGER_RECORD = "ledger.json"
TEMPORAL_DB = "temporal.db"
DEFAULT_LEDGER_FILE = "ledger.db"


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
