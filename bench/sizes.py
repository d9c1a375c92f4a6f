"""How much each measurement does: the full run's sizes, and ``--quick``'s."""

from __future__ import annotations

from dataclasses import dataclass

# Issue #11: a 1,000,000-order batch completes in 40 s end to end, POST included.
BIG_GOAL_ORDERS = 1_000_000
BIG_GOAL_S = 40.0


@dataclass(frozen=True)
class Sizes:
    raw: int  # (a) workflows
    api: int  # (b) calls
    children: int  # (c) child workflows
    batch: int  # (d) and (e) orders
    big_batch: int  # (g) orders
    sequential: int = 200  # (j), (k) and the seed's p50: calls one after another
    storm_calls: int = 1_000  # (f)
    storm_orders: int = 100  # (f)
    concurrency: int = 64  # (a), (b), and the window of (c)
    accounts: int = 1_000
    warmup: int = 20  # per measurement, not timed
    batch_deadline_s: float = 300.0  # (d)
    big_deadline_s: float = 1_200.0  # (g)

    @property
    def big_goal_s(self) -> float:
        """The issue's goal for (g), 40 s for 1,000,000 orders, scaled to ``big_batch``."""
        return BIG_GOAL_S * self.big_batch / BIG_GOAL_ORDERS


FULL = Sizes(raw=2_000, api=2_000, children=2_000, batch=20_000, big_batch=1_000_000)
QUICK = Sizes(
    raw=200,
    api=200,
    children=200,
    batch=2_000,
    big_batch=100_000,
    big_deadline_s=600.0,
    sequential=60,
)
