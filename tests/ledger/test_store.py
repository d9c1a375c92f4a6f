"""The ledger on SQLite and PostgreSQL: one outcome per order, no lost updates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from superscript.ledger import (
    AccountExists,
    AccountNotFound,
    Applied,
    Decider,
    FeeOrder,
    IdempotencyKeyReused,
    InsufficientFunds,
    Ledger,
)
from tests.conftest import at_once, unique

DECIDER = Decider(workflow_id="test", run_id="run-1")


async def test_accounts_open_and_read(ledger: Ledger) -> None:
    account_id = unique("acc")
    created = await ledger.create_account(account_id, 500)
    assert created.balance == 500
    assert (await ledger.get_account(account_id)).balance == 500
    with pytest.raises(AccountExists):
        await ledger.create_account(account_id, 1)
    with pytest.raises(AccountNotFound):
        await ledger.get_account(unique("missing"))


async def test_apply_twice_charges_once_and_replays(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 1_000)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=150)

    first = await ledger.apply_fee(order, DECIDER)
    second = await ledger.apply_fee(order, Decider(workflow_id="other", run_id="run-2"))

    assert first.applied and not second.applied
    assert first.outcome == second.outcome
    assert first.outcome.status == "charged"
    assert first.outcome.balance_after == 850
    # The replay reports who decided it, not who asked again.
    assert second.outcome.workflow_id == "test"
    assert (await ledger.get_account(account_id)).balance == 850
    assert await ledger.charges_for(order.order_id) == 1


async def test_same_order_other_payload_is_a_conflict(ledger: Ledger) -> None:
    account_id = unique("acc")
    other_account = unique("acc")
    await ledger.create_account(account_id, 1_000)
    await ledger.create_account(other_account, 1_000)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=100)
    await ledger.apply_fee(order, DECIDER)

    with pytest.raises(IdempotencyKeyReused):
        await ledger.apply_fee(order.model_copy(update={"amount": 101}), DECIDER)
    with pytest.raises(IdempotencyKeyReused):
        await ledger.apply_fee(order.model_copy(update={"account_id": other_account}), DECIDER)

    assert (await ledger.get_account(account_id)).balance == 900
    assert (await ledger.get_account(other_account)).balance == 1_000
    assert await ledger.charges_for(order.order_id) == 1


async def test_failures_are_recorded_outcomes(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 50)
    poor = FeeOrder(order_id=unique("order"), account_id=account_id, amount=80)
    ghost = FeeOrder(order_id=unique("order"), account_id=unique("ghost"), amount=1)

    poor_outcome = (await ledger.apply_fee(poor, DECIDER)).outcome
    ghost_outcome = (await ledger.apply_fee(ghost, DECIDER)).outcome
    assert poor_outcome.status == "insufficient_funds"
    assert poor_outcome.balance_seen == 50
    assert isinstance(poor_outcome.failure, InsufficientFunds)
    assert ghost_outcome.status == "account_not_found"
    assert isinstance(ghost_outcome.failure, AccountNotFound)

    # The account being opened later does not change an order already decided.
    await ledger.create_account(ghost.account_id, 1_000)
    replay = await ledger.apply_fee(ghost, DECIDER)
    assert not replay.applied
    assert replay.outcome == ghost_outcome
    assert (await ledger.get_account(ghost.account_id)).balance == 1_000
    assert (await ledger.apply_fee(poor, DECIDER)).outcome == poor_outcome
    assert (await ledger.get_account(account_id)).balance == 50


async def test_concurrent_duplicates_charge_once(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 10_000)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=7)

    results: list[Applied] = await at_once(50, lambda _: ledger.apply_fee(order, DECIDER))

    assert sum(1 for result in results if result.applied) == 1
    assert len({result.outcome for result in results}) == 1
    assert (await ledger.get_account(account_id)).balance == 9_993
    assert await ledger.charges_for(order.order_id) == 1


async def test_concurrent_orders_on_one_account_lose_no_update(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 1_000)
    orders = [
        FeeOrder(order_id=unique("order"), account_id=account_id, amount=3) for _ in range(60)
    ]

    await at_once(len(orders), lambda i: ledger.apply_fee(orders[i], DECIDER))

    assert (await ledger.get_account(account_id)).balance == 1_000 - 60 * 3
    assert await ledger.invariant([account_id]) == (1_000, 1_000)


async def test_concurrent_orders_never_overdraw(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 100)
    orders = [
        FeeOrder(order_id=unique("order"), account_id=account_id, amount=30) for _ in range(10)
    ]

    results = await at_once(len(orders), lambda i: ledger.apply_fee(orders[i], DECIDER))
    statuses = [result.outcome.status for result in results]

    assert statuses.count("charged") == 3
    assert statuses.count("insufficient_funds") == 7
    assert (await ledger.get_account(account_id)).balance == 10


async def test_batch_of_orders_in_one_transaction(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 100)
    repeated = FeeOrder(order_id=unique("order"), account_id=account_id, amount=10)
    orders = [
        repeated,
        FeeOrder(order_id=unique("order"), account_id=account_id, amount=20),
        repeated,
        FeeOrder(order_id=unique("order"), account_id=unique("ghost"), amount=1),
    ]

    results = await ledger.apply_fees(orders, DECIDER)

    assert [result.applied for result in results] == [True, True, False, True]
    assert [result.outcome.status for result in results] == [
        "charged",
        "charged",
        "charged",
        "account_not_found",
    ]
    assert (await ledger.get_account(account_id)).balance == 70
    assert await ledger.charges_for(repeated.order_id) == 1


async def test_naive_deduct_charges_every_time(ledger: Ledger) -> None:
    account_id = unique("acc")
    await ledger.create_account(account_id, 100)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=30)

    await ledger.naive_deduct(order)
    await ledger.naive_deduct(order)

    assert (await ledger.get_account(account_id)).balance == 40
    assert await ledger.charges_for(order.order_id) == 2
    with pytest.raises(InsufficientFunds):
        await ledger.naive_deduct(order.model_copy(update={"amount": 41}))
    with pytest.raises(AccountNotFound):
        await ledger.naive_deduct(order.model_copy(update={"account_id": unique("ghost")}))
    assert await ledger.invariant([account_id]) == (100, 100)


async def four_openers_agree(url: str) -> None:
    """Four ledgers opened at once on one database all work and see each other's writes."""
    opened = await asyncio.gather(*(Ledger.open(url) for _ in range(4)))
    try:
        account_id = unique("acc")
        await opened[0].create_account(account_id, 1)
        assert (await opened[3].get_account(account_id)).balance == 1
    finally:
        await asyncio.gather(*(ledger.close() for ledger in opened))


async def test_migrations_are_idempotent_across_openers(db_url: str) -> None:
    """Several processes (API, workers) open one ledger at once; all must succeed."""
    await four_openers_agree(db_url)


async def test_openers_racing_on_a_new_sqlite_file_all_succeed(tmp_path: Path) -> None:
    """`superscript up` starts the API and a worker on a fresh data dir at once.

    Switching a new file to WAL is refused at once (no busy wait) to all but one racing
    opener; this failed about one round in ten before they tried again.
    """
    for round_ in range(40):
        await four_openers_agree(f"sqlite:///{tmp_path / f'ledger-{round_}.db'}")
