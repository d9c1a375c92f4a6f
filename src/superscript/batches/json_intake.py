"""A JSON batch body taken in as it arrives: items checked one by one and staged on disk.

``{"batch_id", "kind", ["script",] "items": [...]}`` is read with the stdlib's own JSON
scanner, one value at a time (``JSONDecoder.raw_decode``): the envelope's small values
whole, then each item as its own object, checked, fed to the digest and staged like a CSV
row (``csv_intake``), so the API's memory does not grow with the batch and the digest is
the one the whole-body route computes.

This reader only ever says yes to a body it fully understood: a well-formed object whose
``kind`` (and ``script``) come before its ``items``, every item plainly valid, and an
envelope that validates. For anything else (malformed JSON, an invalid item, an unusual
layout) it gives up, and the caller answers with the whole-body route on the same bytes:
so every 422 names every bad item exactly as before.
"""

from __future__ import annotations

import codecs
import json
import pickle
import re
from collections.abc import Callable
from typing import IO, Any, Final

from superscript.batches.csv_intake import STAGED_ITEMS_PER_CHUNK, read_staged
from superscript.batches.storing import (
    Cells,
    ItemsDigest,
    StagedItems,
    plain_fee_item_json,
    script_item_json,
)
from superscript.contract import ID_RE, MAX_AMOUNT, MAX_BATCH_ITEMS, MIN_AMOUNT

# An item is never near this long (a script item's args hold at most 64 Ki characters):
# past it, the body is not one this reader takes, and it stops buffering.
MAX_PENDING_CHARS: Final = 2 * 1024 * 1024
_WHITESPACE: Final = " \t\n\r"
_DECODER: Final = json.JSONDecoder()
# The C scanner behind ``raw_decode``: one value at an index, (value, end).
_SCAN: Final[Callable[[str, int], tuple[Any, int]]] = _DECODER.scan_once  # type: ignore[attr-defined]
_ID = ID_RE.fullmatch
_SEPARATOR: Final = re.compile(r"[ \t\n\r]*,[ \t\n\r]*")

# Checks one item the way the whole-body route's model would: its cells and digest line,
# or raises ValueError (any refusal: the caller then gives up).
ItemCheck = Callable[[Any], tuple[Cells, str]]


class GiveUp(Exception):
    """Not a body this reader takes: answer it with the whole-body route."""


def fee_item(item: Any) -> tuple[Cells, str]:
    """A fee item exactly as ``FeeItemIn`` accepts it (strict, no other fields)."""
    if type(item) is dict and len(item) == 3:
        order_id, account_id, amount = (
            item.get("order_id"),
            item.get("account_id"),
            item.get("amount"),
        )
        if (
            type(order_id) is str
            and type(account_id) is str
            and type(amount) is int
            and MIN_AMOUNT <= amount <= MAX_AMOUNT
            and _ID(order_id)
            and _ID(account_id)
        ):
            cells = (order_id, account_id, amount, None)
            return cells, plain_fee_item_json(order_id, account_id, amount)
    raise GiveUp("not a plainly valid fee item")


def script_item(validate: Callable[[Any], Any]) -> ItemCheck:
    """A script item as the route's model (``validate``) accepts it."""

    def check(item: Any) -> tuple[Cells, str]:
        try:
            valid = validate(item)
        except ValueError as exc:
            raise GiveUp("not a valid script item") from exc
        args = list(valid.args)
        return (valid.order_id, None, None, json.dumps(args)), script_item_json(
            valid.order_id, args
        )

    return check


class JsonIntake:
    """Feed it the body's bytes as they come; ``finish`` gives the envelope and items.

    ``checks`` maps a kind to how its items are checked; ``staging`` is an empty binary
    file the caller keeps open until the items are stored.
    """

    def __init__(self, checks: dict[str, ItemCheck], staging: IO[bytes]) -> None:
        self.checks = checks
        self.staging = staging
        self.envelope: dict[str, Any] = {}
        self.first_item: Any = None
        self.total = 0
        self._utf8 = codecs.getincrementaldecoder("utf-8")()
        self._text = ""
        self._pos = 0
        self._state = "start"
        self._check: ItemCheck | None = None
        self._digest: ItemsDigest | None = None
        self._cells: list[Cells] = []
        self._lines: list[str] = []

    def feed(self, data: bytes, *, final: bool = False) -> None:
        """Take the next bytes; raises ``GiveUp`` once the body is not one to take."""
        try:
            self._text = self._text[self._pos :] + self._utf8.decode(data, final)
        except UnicodeDecodeError as exc:
            raise GiveUp("not UTF-8") from exc
        self._pos = 0
        while self._step(final):
            pass
        if len(self._text) - self._pos > MAX_PENDING_CHARS:
            raise GiveUp("a value too long to be an item")
        if final and self._state != "end":
            raise GiveUp("the body ended early")

    def finish(self) -> StagedItems:
        """The staged items, once the whole body was fed (``feed(b"", final=True)``)."""
        assert self._state == "end" and self._digest is not None
        self._stage()
        staging = self.staging
        return StagedItems(self.total, self._digest.hexdigest(), lambda: read_staged(staging))

    # The states, each one step: True when it moved on, False when it needs more text.

    def _step(self, final: bool) -> bool:
        if not self._skip_space():
            return False
        char = self._text[self._pos]
        state = self._state
        if state == "start":
            return self._expect("{", "key")
        if state == "key":
            if char == "}":
                self._pos += 1
                self._state = "end"
                return True
            return self._key(final)
        if state == "items":
            if char == "]":
                raise GiveUp("no items, or a trailing comma")
            return self._item(final)
        if state == "after_item":
            if char == ",":
                self._pos += 1
                self._state = "items"
                return True
            return self._expect("]", "after_value")
        if state == "after_value":
            if char == ",":
                self._pos += 1
                self._state = "key"
                return True
            return self._expect("}", "end")
        raise GiveUp(f"unexpected text in state {state}")

    def _skip_space(self) -> bool:
        text, pos = self._text, self._pos
        while pos < len(text) and text[pos] in _WHITESPACE:
            pos += 1
        self._pos = pos
        return pos < len(text)

    def _expect(self, char: str, then: str) -> bool:
        if self._text[self._pos] != char:
            raise GiveUp(f"expected {char!r}")
        self._pos += 1
        self._state = then
        return True

    def _value(self, final: bool) -> tuple[bool, Any]:
        """One whole JSON value at the position, or (False, None) to wait for more text.

        A value that ends exactly at the end of the text so far may go on (a number):
        it counts only once more text (or the end of the body) follows it.
        """
        try:
            value, end = _DECODER.raw_decode(self._text, self._pos)
        except json.JSONDecodeError as exc:
            if final:
                raise GiveUp("malformed JSON") from exc
            return False, None
        if end >= len(self._text) and not final:
            return False, None
        self._pos = end
        return True, value

    def _key(self, final: bool) -> bool:
        """``"name": value``; the items' array opens its own state."""
        start = self._pos
        done, key = self._value(final)
        if not done:
            return False
        if type(key) is not str or key in self.envelope or (key == "items" and self.total):
            raise GiveUp("not a key, or a repeated one")
        if not self._skip_space():
            self._pos = start
            return False
        self._expect(":", "value")
        if not self._skip_space():
            self._pos = start
            self._state = "key"
            return False
        if key == "items":
            return self._open_items()
        done, value = self._value(final)
        if not done:
            self._pos = start
            self._state = "key"
            return False
        self.envelope[key] = value
        self._state = "after_value"
        return True

    def _open_items(self) -> bool:
        """Items can be checked as they come only once their kind (and script) is known."""
        kind = self.envelope.get("kind")
        check = self.checks.get(kind) if isinstance(kind, str) else None
        script = self.envelope.get("script")
        if check is None or (kind == "script" and not isinstance(script, str)):
            raise GiveUp("items before their kind")
        self._check = check
        self._digest = ItemsDigest(kind, script if kind == "script" else None)  # type: ignore[arg-type]
        self.envelope["items"] = None
        self._expect("[", "items")
        return True

    def _item(self, final: bool) -> bool:
        """Items one after the other, in one tight loop while the text holds them whole."""
        assert self._check is not None
        check, scan, separator = self._check, _SCAN, _SEPARATOR.match
        text, pos = self._text, self._pos
        cells, lines = self._cells, self._lines
        moved = False
        while True:
            try:
                item, end = scan(text, pos)
            except (StopIteration, json.JSONDecodeError) as exc:
                if final:
                    raise GiveUp("malformed JSON") from exc
                break
            if end >= len(text) and not final:
                break
            cell, line = check(item)
            if self.total == 0:
                self.first_item = item
            self.total += 1
            cells.append(cell)
            lines.append(line)
            moved = True
            between = separator(text, end)
            if between is None:
                pos = end
                self._state = "after_item"
                break
            pos = between.end()
        self._pos = pos
        if self.total > MAX_BATCH_ITEMS:
            raise GiveUp("too many items")
        if len(cells) >= STAGED_ITEMS_PER_CHUNK:
            self._stage()
        return moved

    def _stage(self) -> None:
        if self._cells:
            assert self._digest is not None
            self._digest.add_lines(self._lines)
            pickle.dump(self._cells, self.staging)
            self._cells, self._lines = [], []
