"""A replayed failure says when it was decided, and every replay is the first answer exactly.

"Account 'x' does not exist", replayed a week later, reads as the state of now; the
account may well exist by then. The detail says when the order was decided, from the
``decided_at`` of its ``fee_outcomes`` row, set in the same transaction as the outcome.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy import select

from superscript.ledger import Decider, FeeOrder, FeeOutcome, schema
from tests.conftest import Api, unique

STAMP = re.compile(r"decided at (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)$")


async def stored_decided_at(api: Api, order_id: str) -> datetime:
    async with api.ledger.engine.connect() as conn:
        value = await conn.scalar(
            select(schema.fee_outcomes.c.decided_at).where(
                schema.fee_outcomes.c.order_id == order_id
            )
        )
    assert isinstance(value, datetime)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def test_an_unknown_account_is_replayed_with_when_it_was_decided(api: Api) -> None:
    order_id, ghost = unique("order"), unique("ghost")
    body = {"account_id": ghost, "amount": 10}
    before = datetime.now(UTC).replace(microsecond=0)

    first = await api.http.post(f"/orders/{order_id}/fee", json=body)
    # The account appears afterwards: the order's outcome stays what was decided.
    await api.ledger.create_account(ghost, 1_000)
    again = await api.http.post(f"/orders/{order_id}/fee", json=body)
    read = await api.http.get(f"/orders/{order_id}/fee")

    assert first.status_code == again.status_code == read.status_code == 404, first.text
    assert first.content == again.content == read.content
    detail = first.json()["detail"]
    assert detail.startswith(f"account {ghost!r} did not exist when the order was decided at ")
    stamp = STAMP.search(detail)
    assert stamp is not None, detail
    decided = datetime.fromisoformat(stamp.group(1))
    assert decided == await stored_decided_at(api, order_id)
    assert before <= decided <= datetime.now(UTC)
    assert (await api.ledger.get_account(ghost)).balance == 1_000


async def test_insufficient_funds_is_replayed_with_when_it_was_decided(api: Api) -> None:
    account_id, order_id = unique("acc"), unique("order")
    await api.ledger.create_account(account_id, 5)
    body = {"account_id": account_id, "amount": 10}

    first = await api.http.post(f"/orders/{order_id}/fee", json=body)
    again = await api.http.post(f"/orders/{order_id}/fee", json=body)
    read = await api.http.get(f"/orders/{order_id}/fee")

    assert first.status_code == again.status_code == read.status_code == 402, first.text
    assert first.content == again.content == read.content
    detail = first.json()["detail"]
    assert detail.startswith(
        f"account {account_id!r} had 5 and order {order_id!r} needs 10 when it was decided at "
    )
    stamp = STAMP.search(detail)
    assert stamp is not None, detail
    assert datetime.fromisoformat(stamp.group(1)) == await stored_decided_at(api, order_id)


async def test_the_decided_outcome_is_the_one_read_back(api: Api) -> None:
    """What ``apply_fee`` answers first equals the row read later, ``decided_at`` included."""
    account_id = unique("acc")
    await api.ledger.create_account(account_id, 100)
    order = FeeOrder(order_id=unique("order"), account_id=account_id, amount=1_000)
    applied = await api.ledger.apply_fee(order, Decider(workflow_id="wf"))
    read = await api.ledger.get_fee_outcome(order.order_id)

    assert applied.applied and read == applied.outcome
    assert read.decided_at is not None and read.decided_at.tzinfo is not None
    assert read.failure is not None and applied.outcome.failure is not None
    assert read.failure.detail == applied.outcome.failure.detail


def test_outcomes_of_older_workflows_still_load() -> None:
    """Workflow results recorded before ``decided_at`` existed deserialize; no stamp then."""
    old = {
        "order_id": "o",
        "account_id": "a",
        "amount": 3,
        "status": "account_not_found",
        "balance_after": None,
        "balance_seen": None,
        "workflow_id": "FEE-WF-o",
        "run_id": None,
    }
    outcome = FeeOutcome.model_validate(old)
    assert outcome.decided_at is None
    assert outcome.failure is not None
    assert outcome.failure.detail == "account 'a' did not exist when the order was decided"
