"""CSV records read from a body as its bytes arrive, never the whole body at once.

Bytes are decoded incrementally (UTF-8, an optional BOM; a byte that is not UTF-8 is kept
as a lone surrogate, so that every line holding one can be reported). The text is cut into
groups of whole records: at the last newline of what has come, moved back while a quoted
cell is still open (an odd count of quotes), since a quoted cell may hold a newline. Each
byte is looked at a bounded number of times, however long a record is. Each
group is parsed with the ``csv`` module as :mod:`superscript.cli.csv_file` parses a whole
file, so both name the same line for the same record.
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import AsyncGenerator, AsyncIterable

from superscript.batches.csv_rows import UNDECODED_RE, CsvError

Record = tuple[int, list[str]]
"""The line a record starts on, and its cells."""


class RecordSplitter:
    """Fed the body's bytes piece by piece; gives back the records they complete."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="surrogateescape")
        # Text that ends no record yet, kept in pieces: a long open quote stays linear.
        self._pending: list[str] = []
        self._pending_quotes = 0
        self._line = 1
        self.undecoded = False
        """Some byte read so far is not UTF-8: records must be checked for one."""

    def feed(self, data: bytes, final: bool = False) -> list[Record]:
        """The non-blank records that ``data`` completes; all that is left when ``final``."""
        piece = self._decoder.decode(data, final)
        if not self.undecoded and UNDECODED_RE.search(piece):
            self.undecoded = True
        cut = len(piece) if final else _cut(piece, self._pending_quotes)
        if cut is None:
            self._pending.append(piece)
            self._pending_quotes += piece.count('"')
            return []
        text = "".join(self._pending) + piece[:cut]
        rest = piece[cut:]
        self._pending = [rest]
        self._pending_quotes = rest.count('"')
        return self._parse(text)

    def _parse(self, text: str) -> list[Record]:
        if not text:
            return []
        base = self._line
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)
        records: list[Record] = []
        line = base
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise CsvError(base - 1 + reader.line_num, f"malformed CSV: {exc}") from exc
            if row:  # a blank line is no record
                records.append((line, row))
            line = base + reader.line_num
        self._line = base + reader.line_num
        return records


def _cut(piece: str, quotes_before: int) -> int | None:
    """Where the whole records end in ``piece``: after a newline, with every quote closed
    (``quotes_before`` came before it); None when ``piece`` ends none."""
    cut = piece.rfind("\n") + 1
    quotes = quotes_before + piece.count('"', 0, cut)
    while cut and quotes % 2:
        start = piece.rfind("\n", 0, cut - 1) + 1
        quotes -= piece.count('"', start, cut)
        cut = start
    return cut or None


async def records(
    chunks: AsyncIterable[bytes], splitter: RecordSplitter
) -> AsyncGenerator[Record, None]:
    """Every non-blank record of the body, as soon as its bytes have come.

    :class:`CsvError` for malformed CSV: nothing after it can be read reliably.
    """
    async for data in chunks:
        for record in splitter.feed(data):
            yield record
    for record in splitter.feed(b"", final=True):
        yield record
