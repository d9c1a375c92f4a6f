"""Property tests of the ledger: any interleaving of concurrent fee operations stays exact.

Hypothesis generates scenarios: a few accounts with random opening balances (plus one that
never exists), then a handful of operations, each a single ``apply_fee`` or an
``apply_fees`` batch, made of new orders, duplicates of earlier orders (same payload) and
conflicting reuses of earlier order ids (another account or amount). All operations of a
scenario are released at once by an ``asyncio.Barrier`` and run concurrently on the real
database (SQLite and PostgreSQL). Every scenario uses identifiers of its own, so the one
ledger of the test is shared by all examples.

Hypothesis runs in a worker thread and hands each scenario to the test's event loop (the
session loop the ledger's connections belong to), so the test can count the examples that
really ran once Hypothesis is done.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass
from typing import Literal

from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from superscript.ledger import (
    Applied,
    Decider,
    FeeOrder,
    FeeOutcome,
    IdempotencyKeyReused,
    Ledger,
)

MAX_EXAMPLES = 60
MAX_OPENING_BALANCE = 1_000
MAX_AMOUNT = 400
SCENARIO_TIMEOUT_SECONDS = 120


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


OpResult = list[Applied] | IdempotencyKeyReused


async def run_scenario(ledger: Ledger, scenario: Scenario, log: list[str]) -> set[str]:
    """Run every operation of ``scenario`` at once, then check everything it may not break.

    What each operation returned goes to ``log``, for Hypothesis to report on a failure.
    Returns what happened: ``refused``, ``replayed`` and the statuses of decided orders.
    """
    prefix = f"prop-{uuid.uuid4().hex[:12]}"
    accounts = [f"{prefix}-a{index}" for index in range(len(scenario.openings))]
    ghost = f"{prefix}-ghost"
    account_ids = [*accounts, ghost]
    for account_id, opening in zip(accounts, scenario.openings, strict=True):
        await ledger.create_account(account_id, opening)

    def fee_order(spec: OrderSpec) -> FeeOrder:
        return FeeOrder(
            order_id=f"{prefix}-o{spec.order}",
            account_id=account_ids[spec.account],
            amount=spec.amount,
        )

    operations = [[fee_order(spec) for spec in op.orders] for op in scenario.operations]
    deciders = [
        Decider(workflow_id=f"{prefix}-op{index}", run_id=f"run-{index}")
        for index in range(len(operations))
    ]
    barrier = asyncio.Barrier(len(operations))

    async def run(index: int) -> OpResult:
        orders, decider = operations[index], deciders[index]
        await barrier.wait()
        try:
            if scenario.operations[index].kind == "apply_fee":
                return [await ledger.apply_fee(orders[0], decider)]
            return await ledger.apply_fees(orders, decider)
        except IdempotencyKeyReused as exc:
            return exc

    results = await asyncio.gather(*(run(index) for index in range(len(operations))))
    for index, result in enumerate(results):
        log.append(f"operation {index} {scenario.operations[index].kind}: {result!r}")

    order_ids = sorted({order.order_id for orders in operations for order in orders})
    recorded: dict[str, FeeOutcome] = {}
    for order_id in order_ids:
        outcome = await ledger.get_fee_outcome(order_id)
        if outcome is not None:
            recorded[order_id] = outcome

    # Each operation succeeded exactly when none of its orders conflicts with the decided
    # outcome of its order id (or with another order of the same batch).
    returned: dict[str, list[FeeOutcome]] = defaultdict(list)
    for orders, decider, result in zip(operations, deciders, results, strict=True):
        first_in_batch: dict[str, FeeOrder] = {}
        internal_conflict = False
        for order in orders:
            earlier = first_in_batch.setdefault(order.order_id, order)
            internal_conflict |= earlier != order
        conflicting = [
            order
            for order in orders
            if order.order_id in recorded and not recorded[order.order_id].matches(order)
        ]
        if isinstance(result, IdempotencyKeyReused):
            assert internal_conflict or conflicting, f"{decider.workflow_id} raised for nothing"
            # Nothing of a refused operation was decided (and so nothing charged) by it.
            assert all(
                outcome.workflow_id != decider.workflow_id for outcome in recorded.values()
            ), f"{decider.workflow_id} was refused but decided an order"
            continue
        assert not internal_conflict and not conflicting, f"{decider.workflow_id} let a conflict in"
        assert len(result) == len(orders)
        seen_in_batch: set[str] = set()
        for order, applied in zip(orders, result, strict=True):
            assert applied.outcome.order_id == order.order_id
            assert applied.outcome.matches(order)
            # Only the first of its order in its batch can have decided it, and a decision is
            # signed by the deciding operation.
            decided_here = applied.outcome.workflow_id == decider.workflow_id
            assert applied.applied == (decided_here and order.order_id not in seen_in_batch)
            seen_in_batch.add(order.order_id)
            returned[order.order_id].append(applied.outcome)

    # Every outcome returned for one order is identical, and it is the recorded one.
    for order_id, outcomes in returned.items():
        assert all(outcome == recorded[order_id] for outcome in outcomes), order_id
    # Decided orders were decided by some operation of this scenario.
    assert {outcome.workflow_id for outcome in recorded.values()} <= {
        decider.workflow_id for decider in deciders
    }

    # Each order is charged at most once: exactly when its outcome says charged.
    for order_id in order_ids:
        charges = await ledger.charges_for(order_id)
        outcome = recorded.get(order_id)
        assert charges == (1 if outcome is not None and outcome.status == "charged" else 0), (
            order_id
        )

    # Balances: opening minus the distinct charged orders; never negative; the chain of
    # balances each charge reports is the one a serial execution would give.
    for index, (account_id, opening) in enumerate(zip(accounts, scenario.openings, strict=True)):
        mine = [outcome for outcome in recorded.values() if outcome.account_id == account_id]
        charged = [outcome for outcome in mine if outcome.status == "charged"]
        balance = (await ledger.get_account(account_id)).balance
        assert balance >= 0
        assert balance == opening - sum(outcome.amount for outcome in charged), index
        chain = [opening]
        for outcome in sorted(charged, key=lambda o: o.balance_after or 0, reverse=True):
            assert outcome.balance_after == chain[-1] - outcome.amount, outcome
            chain.append(outcome.balance_after)
        for outcome in mine:
            if outcome.status == "insufficient_funds":
                assert outcome.balance_seen in chain and outcome.balance_seen < outcome.amount
            assert outcome.status != "account_not_found"
    for outcome in recorded.values():
        if outcome.account_id == ghost:
            assert outcome.status == "account_not_found"
    with_ghost = await ledger.invariant(account_ids)
    assert with_ghost[0] == with_ghost[1] == sum(scenario.openings)
    assert await ledger.invariant(accounts) == with_ghost

    happened: set[str] = {outcome.status for outcome in recorded.values()}
    if any(isinstance(result, IdempotencyKeyReused) for result in results):
        happened.add("refused")
    if any(
        not applied.applied for result in results if isinstance(result, list) for applied in result
    ):
        happened.add("replayed")
    return happened


async def test_concurrent_fee_operations_keep_the_ledger_exact(ledger: Ledger) -> None:
    loop = asyncio.get_running_loop()
    ran: list[Scenario] = []
    happened: set[str] = set()

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(scenario=scenarios())
    def check(scenario: Scenario) -> None:
        ran.append(scenario)
        log: list[str] = []
        future = asyncio.run_coroutine_threadsafe(run_scenario(ledger, scenario, log), loop)
        try:
            happened.update(future.result(timeout=SCENARIO_TIMEOUT_SECONDS))
        finally:
            for line in log:
                note(line)

    # Hypothesis drives from a thread; each scenario runs on this (the ledger's) loop.
    await asyncio.to_thread(check)

    assert len(ran) >= MAX_EXAMPLES
    # Not only the smallest scenarios: a good share has five or more concurrent operations.
    assert sum(len(scenario.operations) >= 5 for scenario in ran) >= MAX_EXAMPLES // 5
    kinds = {op.kind for scenario in ran for op in scenario.operations}
    assert kinds == {"apply_fee", "apply_fees"}
    assert happened == {
        "charged",
        "insufficient_funds",
        "account_not_found",
        "refused",
        "replayed",
    }
