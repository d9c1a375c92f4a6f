"""A CSV batch body taken in as it arrives: every row checked, the items staged on disk.

The API's memory does not grow with the batch: rows are checked one by one with the rules
of :mod:`superscript.batches.csv_rows` (the CLI's), fed to the batch's digest and written
to a staging file in chunks. Nothing reaches the database while the body comes in: a body
with a bad line stores nothing, and a slow upload never holds SQLite's one writer. Once
the body is whole and good, :func:`superscript.batches.storing.create_staged_batch` reads
the staging file back in chunks and stores it in one transaction.

Each item is staged as the cells the JSON route stores for it and digested by the same
line (``storing.fee_item_json``, ``storing.script_item_json``), so the same batch sent as
CSV or as JSON has the same digest: it is one batch.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import AsyncIterable, Iterator, Sequence
from typing import IO, Any, Final

from superscript.batches.csv_rows import (
    MAX_REPORTED_LINES,
    CsvError,
    Rows,
    check_width,
    read_header,
    undecoded_line,
)
from superscript.batches.csv_stream import RecordSplitter, records
from superscript.batches.models import BatchKind
from superscript.batches.storing import (
    Cells,
    ItemsDigest,
    StagedItems,
    fee_item_json,
    script_item_json,
)
from superscript.contract import MAX_BATCH_ITEMS

STAGED_ITEMS_PER_CHUNK: Final = 5_000


def _fee(item: dict[str, Any]) -> tuple[Cells, str]:
    order_id, account_id, amount = item["order_id"], item["account_id"], item["amount"]
    return (order_id, account_id, amount, None), fee_item_json(order_id, account_id, amount)


def _script(item: dict[str, Any]) -> tuple[Cells, str]:
    order_id, args = item["order_id"], item["args"]
    return (order_id, None, None, json.dumps(args)), script_item_json(order_id, args)


class _Intake:
    """The rows read so far: bad lines, the digest, and the chunk not yet staged."""

    def __init__(self, rows: Rows, staging: IO[bytes]) -> None:
        self.rows = rows
        self.kind: BatchKind = "fee" if rows.kind == "fee" else "script"
        # What the JSON route stores and digests for the same item (its cells, its line).
        self.cells_of = _fee if self.kind == "fee" else _script
        self.staging = staging
        self.digest = ItemsDigest(self.kind, rows.script)
        self.cells: list[Cells] = []
        self.lines: list[str] = []
        self.bad: list[CsvError] = []
        self.total = 0

    def add(self, header: list[str], line: int, row: list[str], undecoded: bool) -> bool:
        """Check one record; False once the rest of the body need not be read."""
        if self.total >= MAX_BATCH_ITEMS:
            self.bad.append(CsvError(line, f"a batch holds at most {MAX_BATCH_ITEMS:,} rows"))
            return False
        self.total += 1
        try:
            if undecoded and (where := undecoded_line(line, row)) is not None:
                raise CsvError(where, "not valid UTF-8 text")
            check_width(header, line, row)
            item = self.rows.item(header, line, row)
        except CsvError as exc:
            self.bad.append(exc)
            return len(self.bad) <= MAX_REPORTED_LINES
        if not self.bad:  # past a bad line nothing is staged: only the bad lines count
            cells, digest_line = self.cells_of(item)
            self.cells.append(cells)
            self.lines.append(digest_line)
            if len(self.cells) >= STAGED_ITEMS_PER_CHUNK:
                self.stage()
        return True

    def stage(self) -> None:
        if self.cells:
            self.digest.add_lines(self.lines)
            pickle.dump(self.cells, self.staging)
            self.cells, self.lines = [], []


def read_staged(staging: IO[bytes]) -> Iterator[Sequence[Cells]]:
    """The staged chunks, in order (the staging file is this process's own)."""
    staging.seek(0)
    while True:
        try:
            chunk: list[Cells] = pickle.load(staging)  # only ever what _Intake.stage wrote
        except EOFError:
            return
        yield chunk


async def take_csv(body: AsyncIterable[bytes], rows: Rows, staging: IO[bytes]) -> StagedItems:
    """Check and stage the whole body; :class:`CsvError` names every bad line (up to 100).

    ``staging`` is an empty binary file the caller keeps open until the items are stored.
    """
    splitter = RecordSplitter()
    intake = _Intake(rows, staging)
    stream = records(body, splitter)
    try:
        header = read_header(await anext(stream, None), rows, splitter.undecoded)
        async for line, row in stream:
            if not intake.add(header, line, row, splitter.undecoded):
                break
    except CsvError as exc:  # a bad header, or malformed CSV: nothing after it is read
        intake.bad.append(exc)
    finally:
        await stream.aclose()
    if intake.bad:
        raise CsvError.of(intake.bad)
    if intake.total == 0:
        raise CsvError(None, "no rows after the header: nothing to submit")
    intake.stage()
    return StagedItems(intake.total, intake.digest.hexdigest(), lambda: read_staged(staging))
