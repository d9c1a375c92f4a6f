"""Outcomes the fee activity of this process just read back from its ledger.

A process that hosts the API and a worker on one ledger runs most of its own fee
workflows (eager start). The API's answer must come from the ledger, never from a
workflow result alone (a history can be from another ledger); an outcome the activity
returned from this very ledger object a moment ago is such an answer, so the route takes
it from here instead of reading the ledger a second time.
"""

from __future__ import annotations

from collections import OrderedDict

from superscript.ledger import FeeOutcome

# Runs this process's worker takes from other starters are never asked for: keep a few.
CAPACITY = 4096


class RecentlyDecided:
    """The latest outcomes by order ID, bounded; each taken at most once."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._outcomes: OrderedDict[str, FeeOutcome] = OrderedDict()
        self._capacity = capacity

    def put(self, outcome: FeeOutcome) -> None:
        self._outcomes[outcome.order_id] = outcome
        self._outcomes.move_to_end(outcome.order_id)
        while len(self._outcomes) > self._capacity:
            self._outcomes.popitem(last=False)

    def take(self, order_id: str) -> FeeOutcome | None:
        return self._outcomes.pop(order_id, None)
