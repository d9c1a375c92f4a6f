"""Fee batches: exact counts and balances, and nothing charged twice whatever is resubmitted."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client

from superscript.batches.store import BatchStore
from superscript.ledger import Decider, FeeOrder
from tests.batches.submitting import finish, submit
from tests.conftest import Api, unique


async def submit_fees(api: Api, batch_id: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return await submit(api, {"batch_id": batch_id, "kind": "fee", "items": items})


async def balance(api: Api, account_id: str) -> int:
    return int((await api.http.get(f"/accounts/{account_id}")).json()["balance"])


async def submit_the_same_orders_again(
    api: Api, client: Client, batch_id: str, items: list[dict[str, Any]], status: dict[str, Any]
) -> None:
    """The same batch again, then its orders in a new batch: nothing is charged again."""
    # The same batch again is the same batch: nothing new runs, nothing is charged.
    again = await submit_fees(api, batch_id, items)
    assert again["batch_id"] == batch_id and again["total"] == 7
    assert await finish(api, client, batch_id) == status

    # The same orders in a new batch are all replays (or the same failures replayed).
    second_id = unique("batch")
    await submit_fees(api, second_id, items)
    second = await finish(api, client, second_id)
    assert (second["succeeded"], second["replayed"], second["failed"]) == (0, 7, 0)


async def test_mixed_batch_gives_exact_counts_and_balances(api: Api, client: Client) -> None:
    rich, poor = unique("rich"), unique("poor")
    await api.ledger.create_account(rich, 10_000)
    await api.ledger.create_account(poor, 5)
    already = unique("order")
    charged_before = await api.http.post(
        f"/orders/{already}/fee", json={"account_id": rich, "amount": 100}
    )
    assert charged_before.status_code == 200

    repeat = unique("order")
    items = [
        {"order_id": unique("order"), "account_id": rich, "amount": 10},
        {"order_id": repeat, "account_id": rich, "amount": 20},
        {"order_id": already, "account_id": rich, "amount": 100},
        {"order_id": repeat, "account_id": rich, "amount": 20},
        {"order_id": unique("order"), "account_id": unique("ghost"), "amount": 1},
        {"order_id": unique("order"), "account_id": poor, "amount": 6},
        {"order_id": unique("order"), "account_id": poor, "amount": 5},
    ]
    batch_id = unique("batch")
    accepted = await submit_fees(api, batch_id, items)
    assert accepted == {
        "batch_id": batch_id,
        "kind": "fee",
        "status": accepted["status"],
        "total": 7,
        "workflow_id": f"BATCH-WF-{batch_id}",
    }
    assert accepted["status"] in ("running", "completed")

    status = await finish(api, client, batch_id)
    assert status == {
        "batch_id": batch_id,
        "kind": "fee",
        "status": "completed",
        "total": 7,
        "succeeded": 3,
        "replayed": 2,
        "failed": 2,
        "pending": 0,
    }
    assert await balance(api, rich) == 10_000 - 100 - 10 - 20
    assert await balance(api, poor) == 0
    assert await api.ledger.charges_for(repeat) == 1
    assert await api.ledger.charges_for(already) == 1

    await submit_the_same_orders_again(api, client, batch_id, items, status)
    assert await balance(api, rich) == 10_000 - 130
    assert await balance(api, poor) == 0
    total_before = 10_000 + 5
    assert await api.ledger.invariant([rich, poor]) == (total_before, total_before)

    failed = await api.http.get(f"/batches/{batch_id}/items", params={"status": "failed"})
    assert failed.status_code == 200
    outcomes = sorted(item["outcome"] for item in failed.json()["items"])
    assert outcomes == ["account_not_found", "insufficient_funds"]


async def test_reused_batch_id_with_other_items_is_refused(api: Api, client: Client) -> None:
    account_id = unique("acc")
    await api.ledger.create_account(account_id, 100)
    batch_id = unique("batch")
    items = [{"order_id": unique("order"), "account_id": account_id, "amount": 10}]
    await submit_fees(api, batch_id, items)
    await finish(api, client, batch_id)

    other_order = unique("order")
    other = [{"order_id": other_order, "account_id": account_id, "amount": 10}]
    response = await api.http.post(
        "/batches", json={"batch_id": batch_id, "kind": "fee", "items": other}
    )
    assert response.status_code == 422
    assert response.json()["code"] == "idempotency_key_reused"
    assert await api.ledger.charges_for(other_order) == 0
    assert await balance(api, account_id) == 90


async def test_items_page_through_in_order(api: Api, client: Client) -> None:
    account_id = unique("acc")
    await api.ledger.create_account(account_id, 1_000)
    batch_id = unique("batch")
    orders = [unique("order") for _ in range(25)]
    await submit_fees(
        api, batch_id, [{"order_id": o, "account_id": account_id, "amount": 1} for o in orders]
    )
    await finish(api, client, batch_id)

    seen: list[str] = []
    after: int | None = None
    while True:
        params: dict[str, Any] = {"limit": 10}
        if after is not None:
            params["after"] = after
        page = (await api.http.get(f"/batches/{batch_id}/items", params=params)).json()
        seen.extend(item["order_id"] for item in page["items"])
        assert all(item["status"] == "succeeded" for item in page["items"])
        after = page["next_after"]
        if after is None:
            break
    assert seen == orders
    missing = await api.http.get(f"/batches/{unique('nope')}")
    assert missing.status_code == 404 and missing.json()["code"] == "batch_not_found"


async def test_chunk_retried_after_commit_applies_nothing_twice(api: Api) -> None:
    """As when a worker dies after the chunk's transaction committed."""
    account_id = unique("acc")
    await api.ledger.create_account(account_id, 1_000)
    store = BatchStore(api.ledger)
    batch_id = unique("batch")
    items = [FeeOrder(order_id=unique("order"), account_id=account_id, amount=7) for _ in range(10)]
    await store.create(batch_id, "fee", None, items)
    decider = Decider(workflow_id=f"BATCH-WF-{batch_id}", run_id="r1")

    first = await store.apply_fee_chunk(batch_id, 0, 10, decider)
    second = await store.apply_fee_chunk(batch_id, 0, 10, decider)

    assert (first.succeeded, first.replayed, first.failed) == (10, 0, 0)
    assert (second.succeeded, second.replayed, second.failed) == (0, 0, 0)
    batch = await store.get(batch_id)
    assert batch is not None and (batch.succeeded, batch.pending) == (10, 0)
    assert await balance(api, account_id) == 930
    # Even with the item statuses lost, the ledger's order key would stop a second charge.
    replay = await api.ledger.apply_fee(
        FeeOrder(order_id=items[0].order_id, account_id=account_id, amount=7), decider
    )
    assert not replay.applied
