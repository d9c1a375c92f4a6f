"""Scenarios of concurrent fee operations for the ledger's property test, and the Hypothesis
strategy that draws them: new orders, duplicates and conflicting reuses of earlier IDs."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from hypothesis import strategies as st

MAX_OPENING_BALANCE = 1_000
MAX_AMOUNT = 400


@dataclass(frozen=True)
class OrderSpec:
    """An order by index: ``account`` == number of accounts means the missing account."""

    order: int
    account: int
    amount: int


@dataclass(frozen=True)
class Operation:
    kind: Literal["apply_fee", "apply_fees"]
    orders: tuple[OrderSpec, ...]


@dataclass(frozen=True)
class Scenario:
    openings: tuple[int, ...]
    operations: tuple[Operation, ...]


OrderKind = Literal["new", "duplicate", "conflict"]
# New orders and duplicates twice as likely as conflicts.
ORDER_KINDS: tuple[OrderKind, ...] = ("new", "new", "duplicate", "duplicate", "conflict")


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    openings = tuple(
        draw(
            st.lists(st.integers(0, MAX_OPENING_BALANCE), min_size=1, max_size=3),
            label="openings",
        )
    )
    # Index len(openings) is an account that is never opened.
    account_indices = st.integers(0, len(openings))
    first_payload: dict[int, tuple[int, int]] = {}
    operations: list[Operation] = []
    for _ in range(draw(st.integers(2, 8), label="operations")):
        single = draw(st.booleans())
        size = 1 if single else draw(st.integers(1, 4))
        orders: list[OrderSpec] = []
        for _ in range(size):
            kind: OrderKind = draw(st.sampled_from(ORDER_KINDS)) if first_payload else "new"
            if kind == "new":
                index = len(first_payload)
                account, amount = draw(account_indices), draw(st.integers(1, MAX_AMOUNT))
                first_payload[index] = (account, amount)
            else:
                index = draw(st.sampled_from(sorted(first_payload)))
                account, amount = first_payload[index]
                if kind == "conflict":
                    if draw(st.booleans()):
                        amount += draw(st.integers(1, 50))
                    else:
                        shift = draw(st.integers(1, len(openings)))
                        account = (account + shift) % (len(openings) + 1)
            orders.append(OrderSpec(order=index, account=account, amount=amount))
        operations.append(Operation("apply_fee" if single else "apply_fees", tuple(orders)))
    return Scenario(openings=openings, operations=tuple(operations))
