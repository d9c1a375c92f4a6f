"""Keyset paging, the one rule every list follows: never OFFSET, always an index range.

A list is ordered by its key columns, the last of which is unique (the row's ID). A page
asks for ``limit + 1`` rows after a cursor: the extra row only says whether another page
follows. The cursor (``next_after``) is the ID of the last row of a page. Where the order
has one column the ID is compared directly; otherwise the cursor row's own key is read
in a subquery and compared as a row value, ``(decided_at, order_id) < (SELECT ...)``,
so that the database compares the values it stored (a timestamp never goes through
Python and back, where SQLite's text form of it could change). A cursor that names no row
is past every row: an empty page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import ColumnElement, Select, select, tuple_

T = TypeVar("T")
Cursor = str | int


@dataclass(frozen=True)
class Keyset:
    """The order of one list: its key columns (the ID last) and their direction."""

    key: tuple[ColumnElement[Any], ...]
    descending: bool = False

    @property
    def id_column(self) -> ColumnElement[Any]:
        return self.key[-1]

    def page(
        self,
        query: Select[Any],
        after: Cursor | None,
        limit: int,
        scope: Sequence[ColumnElement[bool]] = (),
    ) -> Select[Any]:
        """``query`` ordered along the key, from after ``after``, ``limit + 1`` rows.

        ``scope`` narrows the cursor's lookup to its own list (a script's runs share
        order IDs with other scripts' runs).
        """
        if after is not None:
            query = query.where(self._after(after, scope))
        order = [column.desc() if self.descending else column.asc() for column in self.key]
        return query.order_by(*order).limit(limit + 1)

    def _after(self, after: Cursor, scope: Sequence[ColumnElement[bool]]) -> ColumnElement[bool]:
        if len(self.key) == 1:
            column = self.key[0]
            return column < after if self.descending else column > after
        cursor_row = select(*self.key).where(self.id_column == after, *scope).scalar_subquery()
        position = tuple_(*self.key)
        return position < cursor_row if self.descending else position > cursor_row


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list and the cursor of the next, None after the last."""

    items: list[T]
    next_after: Cursor | None


def split_page(rows: Sequence[Any], limit: int, convert: Callable[[Any], T], id_of: str) -> Page[T]:
    """The page of ``rows`` (fetched ``limit + 1``) and its ``next_after``.

    ``id_of`` names the row's ID column: the cursor is the last shown row's.
    """
    shown = rows[:limit]
    more = len(rows) > limit
    next_after = getattr(shown[-1], id_of) if more and shown else None
    return Page(items=[convert(row) for row in shown], next_after=next_after)
