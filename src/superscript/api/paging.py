"""The paging parameters and page bodies every list route shares (``db.paging`` pages).

``?limit=`` (1 to 1,000, default 100) and ``?after=`` (the previous page's
``next_after``); the answer is ``{"items": [...], "next_after": ... or null}``. A bad
``limit`` or ``after`` is a ``422 validation_error`` like any bad input.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query

from superscript.contract import (
    ID_MAX_LENGTH,
    ID_PATTERN,
    PAGE_LIMIT_DEFAULT,
    PAGE_LIMIT_MAX,
    PAGE_LIMIT_MIN,
)

# Re-exported for the routes: the default of every ``limit: PageLimit``.
__all__ = ["PAGE_LIMIT_DEFAULT", "IdAfter", "IdFilter", "PageLimit", "SeqAfter"]

MAX_SEQ = 2**63 - 1
"""The largest integer either database stores: a wider cursor would be a 500, not a 422."""

PageLimit = Annotated[
    int,
    Query(ge=PAGE_LIMIT_MIN, le=PAGE_LIMIT_MAX, description="items per page (1 to 1,000)"),
]
IdAfter = Annotated[
    str | None,
    Query(
        pattern=ID_PATTERN,
        min_length=1,
        max_length=ID_MAX_LENGTH,
        description="the previous page's next_after (an ID of this list)",
    ),
]
SeqAfter = Annotated[
    int | None,
    Query(ge=0, le=MAX_SEQ, description="the previous page's next_after (an entry's number)"),
]
IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH)]
"""A filter by an identifier (``?account_id=``, ``?batch_id=``)."""
