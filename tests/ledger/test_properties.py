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

from hypothesis import HealthCheck, given, note, settings

from superscript.ledger import (
    Applied,
    Decider,
    FeeOrder,
    FeeOutcome,
    IdempotencyKeyReused,
    Ledger,
)
from tests.conftest import at_once
from tests.ledger.scenarios import OrderSpec, Scenario, scenarios

MAX_EXAMPLES = 60
SCENARIO_TIMEOUT_SECONDS = 120


OpResult = list[Applied] | IdempotencyKeyReused


@dataclass
class Ran:
    """A scenario after its operations ran at once: the orders and deciders of each, what
    each returned, and the outcome the ledger recorded for each order it decided."""

    accounts: list[str]
    ghost: str
    operations: list[list[FeeOrder]]
    deciders: list[Decider]
    results: list[OpResult]
    recorded: dict[str, FeeOutcome]

    @property
    def account_ids(self) -> list[str]:
        return [*self.accounts, self.ghost]

    @property
    def order_ids(self) -> list[str]:
        return sorted({order.order_id for orders in self.operations for order in orders})


async def run_operations(ledger: Ledger, scenario: Scenario, log: list[str]) -> Ran:
    """Open the scenario's accounts, release all its operations at once, read the outcomes.

    What each operation returned goes to ``log``, for Hypothesis to report on a failure.
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

    async def run(index: int) -> OpResult:
        orders, decider = operations[index], deciders[index]
        try:
            if scenario.operations[index].kind == "apply_fee":
                return [await ledger.apply_fee(orders[0], decider)]
            return await ledger.apply_fees(orders, decider)
        except IdempotencyKeyReused as exc:
            return exc

    results = await at_once(len(operations), run)
    for index, result in enumerate(results):
        log.append(f"operation {index} {scenario.operations[index].kind}: {result!r}")
    ran = Ran(accounts, ghost, operations, deciders, results, recorded={})
    for order_id in ran.order_ids:
        outcome = await ledger.get_fee_outcome(order_id)
        if outcome is not None:
            ran.recorded[order_id] = outcome
    return ran


def check_operations(ran: Ran) -> None:
    """Each operation succeeded exactly when none of its orders conflicts with the decided
    outcome of its order id (or with another order of the same batch)."""
    recorded = ran.recorded
    returned: dict[str, list[FeeOutcome]] = defaultdict(list)
    for orders, decider, result in zip(ran.operations, ran.deciders, ran.results, strict=True):
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
        decider.workflow_id for decider in ran.deciders
    }


async def check_books(ledger: Ledger, scenario: Scenario, ran: Ran) -> None:
    """Charges and balances agree with the recorded outcomes, and the totals are kept."""
    recorded = ran.recorded
    # Each order is charged at most once: exactly when its outcome says charged.
    for order_id in ran.order_ids:
        charges = await ledger.charges_for(order_id)
        outcome = recorded.get(order_id)
        assert charges == (1 if outcome is not None and outcome.status == "charged" else 0), (
            order_id
        )

    # Balances: opening minus the distinct charged orders; never negative; the chain of
    # balances each charge reports is the one a serial execution would give.
    for index, (account_id, opening) in enumerate(
        zip(ran.accounts, scenario.openings, strict=True)
    ):
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
        if outcome.account_id == ran.ghost:
            assert outcome.status == "account_not_found"
    with_ghost = await ledger.invariant(ran.account_ids)
    assert with_ghost[0] == with_ghost[1] == sum(scenario.openings)
    assert await ledger.invariant(ran.accounts) == with_ghost


def what_happened(ran: Ran) -> set[str]:
    """``refused``, ``replayed`` and the statuses of decided orders, as far as they happened."""
    happened: set[str] = {outcome.status for outcome in ran.recorded.values()}
    if any(isinstance(result, IdempotencyKeyReused) for result in ran.results):
        happened.add("refused")
    if any(
        not applied.applied
        for result in ran.results
        if isinstance(result, list)
        for applied in result
    ):
        happened.add("replayed")
    return happened


async def run_scenario(ledger: Ledger, scenario: Scenario, log: list[str]) -> set[str]:
    """Run every operation of ``scenario`` at once, then check everything it may not break.

    Returns what happened: ``refused``, ``replayed`` and the statuses of decided orders.
    """
    ran = await run_operations(ledger, scenario, log)
    check_operations(ran)
    await check_books(ledger, scenario, ran)
    return what_happened(ran)


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
