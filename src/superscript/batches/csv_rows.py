"""The kinds of batch rows in a CSV file, each cell checked with the API's own rules.

The rules come from ``superscript.contract``, so a row taken here is one the API takes.
Each kind of row is a :class:`Rows`: the header it wants, how a row becomes an item, and
the column that names an item once. Fee rows (``order_id,account_id,amount``) and script
rows (``order_id,ARG...``) are here; refund rows (``refund_id,order_id,amount``) take
their place beside them. One copy for both readers: the CLI's
(:mod:`superscript.cli.csv_file`, a whole file) and the API's
(:mod:`superscript.batches.csv_stream`, a body read as it arrives).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Final

from superscript.contract import (
    ID_RULE,
    MAX_AMOUNT,
    MAX_ARGS,
    arg_problem,
    args_problem,
    is_amount,
    is_identifier,
)

DIGITS_RE: Final = re.compile(r"[0-9]+")
AMOUNT_MAX_DIGITS: Final = len(str(MAX_AMOUNT))
FEE_HEADER: Final = ("order_id", "account_id", "amount")
MAX_REPORTED_LINES: Final = 100
"""A file with more bad lines than this reports these first ones."""
# A byte that is not UTF-8, as ``surrogateescape`` keeps it: no UTF-8 text decodes to one.
UNDECODED_RE: Final = re.compile("[\udc80-\udcff]")
SCRIPT_OPTION: Final = "--script {name}"
"""How the CLI asks for a script batch; the API's is ``kind=script&script={name}``."""


def listing(entries: Sequence[object], what: str) -> str:
    """``N {what}:`` then one line each; past the limit, the first ones."""
    shown = entries[:MAX_REPORTED_LINES]
    if len(entries) > MAX_REPORTED_LINES:
        heading = f"more than {MAX_REPORTED_LINES} {what}; the first ones:"
    else:
        heading = f"{len(shown)} {what}:"
    return "\n".join([heading, *(str(entry) for entry in shown)])


class CsvError(ValueError):
    """A row (or the file) breaks the rules: nothing of the file may be submitted.

    ``line`` and ``reason`` are the first problem's; ``problems`` lists every bad line
    found (up to ``MAX_REPORTED_LINES``), so one run of the command shows them all.
    """

    def __init__(self, line: int | None, reason: str) -> None:
        where = f"line {line}: " if line is not None else ""
        super().__init__(f"{where}{reason}")
        self.line = line
        self.reason = reason
        self.problems: list[CsvError] = [self]

    @classmethod
    def of(cls, problems: list[CsvError]) -> CsvError:
        """One error that reports each of ``problems`` (the first ones), a line each."""
        if len(problems) == 1:
            return problems[0]
        shown = problems[:MAX_REPORTED_LINES]
        error = cls(shown[0].line, shown[0].reason)
        error.args = (listing(problems, "bad lines"),)
        error.problems = shown
        return error


# --- one cell --------------------------------------------------------------------------------


def check_identifier(value: str, what: str, line: int | None = None) -> str:
    if not is_identifier(value):
        shown = repr(value) if value else "empty"
        raise CsvError(line, f"{what} {shown} is not {ID_RULE}")
    return value


def check_amount(value: str, line: int) -> int:
    if not DIGITS_RE.fullmatch(value):
        shown = repr(value) if value else "empty"
        raise CsvError(
            line,
            f"amount {shown} is not a plain integer of minor units "
            "(digits only: no sign, decimal point or spaces)",
        )
    significant = value.lstrip("0")
    # Digits first: int() of a huge string is slow (and refused past 4,300 digits).
    if not significant or len(significant) > AMOUNT_MAX_DIGITS or not is_amount(int(significant)):
        raise CsvError(line, f"amount {value} is outside 1 to 10^15")
    return int(significant)


def check_arg(value: str, column: str, line: int) -> str:
    problem = arg_problem(value)
    if problem is not None:
        raise CsvError(line, f"argument {column!r} {problem}")
    return value


# --- the kinds of rows -----------------------------------------------------------------------


def undecoded_line(line: int, row: list[str]) -> int | None:
    """The line of the record's first byte that is not UTF-8 (a quoted cell may span lines)."""
    newlines = 0
    for cell in row:
        found = UNDECODED_RE.search(cell)
        if found:
            return line + newlines + cell.count("\n", 0, found.start())
        newlines += cell.count("\n")
    return None


def check_width(header: list[str], line: int, row: list[str]) -> None:
    """:class:`CsvError` unless ``row`` has as many cells as ``header``."""
    if len(row) != len(header):
        missing = "missing" if len(row) < len(header) else "extra"
        raise CsvError(
            line,
            f"{len(row)} columns where the header has {len(header)} ({missing} columns)",
        )


def read_header(first: tuple[int, list[str]] | None, rows: Rows, undecoded: bool) -> list[str]:
    """The header's column names from the first record; :class:`CsvError` if it is not one."""
    if first is None:
        raise CsvError(None, "the file is empty: want a header line and at least one row")
    line, header = first
    if undecoded and (where := undecoded_line(line, header)) is not None:
        raise CsvError(where, "not valid UTF-8 text")
    names = [name.strip() for name in header]
    rows.check_header(names, line)
    return names


class Rows(ABC):
    """One kind of batch row: the header it wants, and how a row becomes an item."""

    kind: ClassVar[str]
    key: ClassVar[str] = "order_id"
    """The column that names an item: no two lines may give it other values."""
    script: str | None = None
    option: str = SCRIPT_OPTION
    """How the reader's user asks for a script batch (named in header refusals)."""

    @abstractmethod
    def check_header(self, header: list[str], line: int) -> None:
        """:class:`CsvError` when ``header`` is not this kind's."""

    @abstractmethod
    def item(self, header: list[str], line: int, row: list[str]) -> dict[str, Any]:
        """One row (as many cells as the header) as an item; :class:`CsvError` if it can't be."""


class FeeRows(Rows):
    """``order_id,account_id,amount``: charge AMOUNT to ACCOUNT_ID once for ORDER_ID."""

    kind = "fee"

    def check_header(self, header: list[str], line: int) -> None:
        if tuple(header) != FEE_HEADER:
            raise CsvError(
                line,
                f"header {','.join(header)!r} is not 'order_id,account_id,amount' "
                f"(use {self.option.format(name='NAME')} for a script batch)",
            )

    def item(self, header: list[str], line: int, row: list[str]) -> dict[str, Any]:
        order_id = check_identifier(row[0], "order_id", line)
        account_id = check_identifier(row[1], "account_id", line)
        amount = check_amount(row[2], line)
        return {"order_id": order_id, "account_id": account_id, "amount": amount}


class ScriptRows(Rows):
    """``order_id,ARG...``: run the script once for ORDER_ID with the row's other cells."""

    kind = "script"

    def __init__(self, script: str, option: str = SCRIPT_OPTION) -> None:
        self.script = script
        self.option = option

    def check_header(self, header: list[str], line: int) -> None:
        if tuple(header) == FEE_HEADER:
            option = self.option.format(name=self.script)
            # Run as a script batch, every row would be a script run that fails (or worse,
            # one that takes the account and amount for arguments): refuse it before.
            raise CsvError(
                line,
                f"header 'order_id,account_id,amount' is a fee batch's header, not a "
                f"script's: drop {option} to submit it as a fee batch",
            )
        if not header or header[0] != "order_id":
            raise CsvError(line, "a script batch's header starts with 'order_id', then the args")
        if len(header) - 1 > MAX_ARGS:
            raise CsvError(line, f"at most {MAX_ARGS} argument columns")

    def item(self, header: list[str], line: int, row: list[str]) -> dict[str, Any]:
        order_id = check_identifier(row[0], "order_id", line)
        args = [check_arg(cell, name, line) for name, cell in zip(header[1:], row[1:], strict=True)]
        problem = args_problem(args)
        if problem is not None:
            raise CsvError(line, problem)
        return {"order_id": order_id, "args": args}


def rows_for(script: str | None, option: str = SCRIPT_OPTION) -> Rows:
    """Fee rows, or the rows of a batch of ``script``; ``option`` is how a user asks for one."""
    if script is None:
        rows: Rows = FeeRows()
        rows.option = option
        return rows
    return ScriptRows(script, option)
