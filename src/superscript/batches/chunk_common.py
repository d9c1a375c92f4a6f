"""What a fee chunk does alike on every database: what it read, and how its ends group."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass

from superscript.batches.models import Counts
from superscript.ledger import FeeOutcome
from superscript.ledger.bulk import ItemEnd, OrderRow

# How items that ended alike end: status, outcome, detail.
EndKey = tuple[str, str, str | None]


@dataclass(frozen=True)
class ChunkRead:
    """A chunk's pending orders, their accounts' balances, their stored outcomes."""

    orders: list[OrderRow]
    balances: dict[str, int]
    stored: dict[str, FeeOutcome]


def largest_group(ends: list[ItemEnd]) -> tuple[EndKey, list[ItemEnd]]:
    """The way most items ended, and every item that ended otherwise.

    The chunk's items were all pending when read in this transaction: once the others
    are marked, what is still pending is exactly the largest group, so one range update
    marks it (a whole chunk charged: one statement, not one per item).
    """
    alike: defaultdict[EndKey, list[ItemEnd]] = defaultdict(list)
    for end in ends:
        alike[end[1], end[2], end[3]].append(end)
    largest = max(alike, key=lambda key: len(alike[key]))
    others = [end for key, group in alike.items() if key != largest for end in group]
    return largest, others


def tally(ends: list[ItemEnd]) -> Counts:
    counted = Counter(end[1] for end in ends)
    return Counts(
        succeeded=counted["succeeded"], replayed=counted["replayed"], failed=counted["failed"]
    )
