"""A CSV file read into one batch's items, every line checked before anything is sent.

A file with bad rows gives no batch: :class:`~superscript.batches.csv_rows.CsvError` names
every bad line (the first 100: a line that is not UTF-8, a row that breaks the rules of
its kind, see :mod:`superscript.batches.csv_rows`), so one run shows them all.

Within one file, an item named twice is either a repeat (the same line again: sent as is,
and the batch applies it once and counts the repeat ``replayed``; the reader notes it) or
a conflict (the same order with other values, which the batch would fail as
``idempotency_key_reused``): a conflict is a bad line, so such a file submits nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from array import array
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from superscript.batches.csv_rows import (
    MAX_REPORTED_LINES,
    CsvError,
    Rows,
    check_width,
    listing,
    read_header,
    rows_for,
    undecoded_line,
)
from superscript.contract import MAX_BATCH_ITEMS


@dataclass(frozen=True)
class Repeat:
    """A line whose item an earlier line holds already, exactly: sent as is, applied once."""

    line: int
    first: int
    key: str
    value: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.key} {self.value!r} repeats line {self.first}"


def repeats_note(repeats: Sequence[Repeat]) -> str:
    """What to tell of the repeats of a file before it is sent."""
    after = "sent as is: the batch applies each item once and counts a repeat replayed"
    if len(repeats) == 1:
        return f"{repeats[0]} exactly; {after}"
    return f"{listing(repeats, 'lines repeat an earlier line exactly')}\n(they are {after})"


@dataclass(frozen=True)
class Batch:
    """A validated batch request, ready to POST to ``/batches``."""

    kind: str
    script: str | None
    items: list[dict[str, Any]]
    repeats: tuple[Repeat, ...] = ()
    """The lines that repeat an earlier line exactly (the first ones)."""

    def fingerprint(self) -> str:
        """The same kind, script and items (in order) give the same hex digest."""
        digest = hashlib.sha256(f"{self.kind}\n{self.script or ''}\n".encode())
        for item in self.items:
            digest.update(json.dumps(item, separators=(",", ":"), sort_keys=True).encode())
            digest.update(b"\n")
        return digest.hexdigest()

    def default_id(self) -> str:
        return f"csv-{self.fingerprint()[:16]}"

    def body(self, batch_id: str) -> dict[str, Any]:
        body: dict[str, Any] = {"batch_id": batch_id, "kind": self.kind}
        if self.script is not None:
            body["script"] = self.script
        body["items"] = self.items
        return body


def _decode(data: bytes) -> tuple[str, bool]:
    """The text, and whether it holds bytes that are not UTF-8 (kept as lone surrogates,
    so that every line that has one can be reported, not only the first)."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", errors="surrogateescape"), True


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of every non-blank record; quoted fields may span lines."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    line = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CsvError(reader.line_num, f"malformed CSV: {exc}") from exc
        if row:  # a blank line is no record
            yield line, row
        line = reader.line_num + 1


class _Reading:
    """The items read so far, the bad lines, and the line that first named each item."""

    def __init__(self, rows: Rows, header: list[str], undecoded: bool) -> None:
        self.rows = rows
        self.header = header
        self.undecoded = undecoded
        self.items: list[dict[str, Any]] = []
        self.lines = array("q")  # each item's line, side by side with ``items``
        self.first: dict[str, int] = {}  # an item's key -> its first place in ``items``
        self.bad: list[CsvError] = []
        self.repeats: list[Repeat] = []
        self.records = 0

    def add(self, line: int, row: list[str]) -> bool:
        """Read one record; False once the rest of the file need not be read."""
        self.records += 1
        if self.records > MAX_BATCH_ITEMS:
            self.bad.append(CsvError(line, f"a batch holds at most {MAX_BATCH_ITEMS:,} rows"))
            return False
        try:
            if self.undecoded and (where := undecoded_line(line, row)) is not None:
                raise CsvError(where, "not valid UTF-8 text")
            check_width(self.header, line, row)
            item = self.rows.item(self.header, line, row)
            # One dict operation per row: a new key takes the item's place, an old one
            # gives its first place (a million rows are read in seconds).
            place = len(self.items)
            first = self.first.setdefault(item[self.rows.key], place)
            if first != place:
                self._repeat(line, item, first)
        except CsvError as exc:
            self.bad.append(exc)
            return len(self.bad) <= MAX_REPORTED_LINES
        self.items.append(item)
        self.lines.append(line)
        return True

    def _repeat(self, line: int, item: dict[str, Any], first: int) -> None:
        """``item`` names the item at ``first`` again: note a repeat; :class:`CsvError` for a
        conflict."""
        key, first_line, first_item = self.rows.key, self.lines[first], self.items[first]
        value = item[key]
        if first_item != item:
            other = ", ".join(name for name in item if item[name] != first_item[name])
            raise CsvError(
                line,
                f"{key} {value!r} is already on line {first_line} with other values "
                f"({other}): the batch would fail this line as idempotency_key_reused",
            )
        if len(self.repeats) <= MAX_REPORTED_LINES:
            self.repeats.append(Repeat(line, first_line, key, value))


def read_batch(data: bytes, rows: Rows) -> Batch:
    """Validate the whole file; :class:`CsvError` names every bad line (up to 100)."""
    text, undecoded = _decode(data)
    records = _records(text)
    header = read_header(next(records, None), rows, undecoded)
    reading = _Reading(rows, header, undecoded)
    try:
        for line, row in records:
            if not reading.add(line, row):
                break
    except CsvError as exc:  # malformed CSV: nothing after it can be read reliably
        reading.bad.append(exc)
    if reading.bad:
        raise CsvError.of(reading.bad)
    if not reading.items:
        raise CsvError(None, "no rows after the header: nothing to submit")
    return Batch(rows.kind, rows.script, reading.items, tuple(reading.repeats))


def parse_csv(data: bytes, script: str | None = None) -> Batch:
    """A fee batch, or with ``script`` a script batch: see :func:`read_batch`."""
    return read_batch(data, rows_for(script))
