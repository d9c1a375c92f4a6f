"""The list routes on SQLite and PostgreSQL: paged alike, every row once, in order.

Rows are made in bulk through the ledger itself (a few thousand), then read back page by
page over HTTP. The database is shared by the module's tests (and on PostgreSQL by the
session's), so each test names its own rows and looks at those.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from superscript.batches.schema import batches
from superscript.ledger import Decider, FeeOrder, schema
from superscript.scripts.models import ScriptRunResult
from superscript.scripts.schema import script_runs
from tests.api.checks import assert_problem
from tests.conftest import Api, unique

MANY = 2_500


async def all_pages(api: Api, path: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, following ``next_after`` from the first page to the last."""
    items: list[dict[str, Any]] = []
    after: Any = None
    while True:
        query = {**params, "limit": limit, **({} if after is None else {"after": after})}
        response = await api.http.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == {"items", "next_after"}
        assert len(body["items"]) <= limit
        items += body["items"]
        after = body["next_after"]
        if after is None:
            return items
        assert body["items"], "a page with a next page is never empty"


async def test_accounts_are_paged_by_id_each_once(quiet_api: Api) -> None:
    prefix = unique("many")
    ids = [f"{prefix}-{n:05d}" for n in range(MANY)]
    async with quiet_api.ledger.write() as conn:
        await conn.execute(
            insert(schema.accounts),
            [{"account_id": i, "balance": n, "opening_balance": n} for n, i in enumerate(ids)],
        )

    listed = await all_pages(quiet_api, "/accounts", 997)

    mine = [item for item in listed if item["account_id"].startswith(prefix)]
    assert [item["account_id"] for item in mine] == ids
    assert [item["balance"] for item in mine] == list(range(MANY))
    every = [item["account_id"] for item in listed]
    assert every == sorted(every) and len(set(every)) == len(every)


async def charge_many(api: Api, balance: int) -> tuple[str, list[str], str]:
    """An account charged ``MANY`` orders by one batch (ties on ``decided_at``), then some
    more through the API's workflow ID and one declined; (account, order IDs, batch)."""
    account_id = unique("acc")
    await api.ledger.create_account(account_id, balance)
    batch_id = unique("batch")
    orders = [FeeOrder(order_id=unique("o"), account_id=account_id, amount=3) for _ in range(MANY)]
    for start in range(0, MANY, 500):
        part = orders[start : start + 500]
        await api.ledger.apply_fees(part, Decider(workflow_id=f"BATCH-WF-{batch_id}", run_id="r"))
    for order in orders[:5]:  # replays: nothing changes
        await api.ledger.apply_fee(order, Decider(workflow_id="FEE-WF-x"))
    extra = [FeeOrder(order_id=unique("o"), account_id=account_id, amount=5) for _ in range(3)]
    for order in extra:
        await api.ledger.apply_fee(order, Decider(workflow_id=f"FEE-WF-{order.order_id}"))
    declined = FeeOrder(order_id=unique("o"), account_id=account_id, amount=10**15)
    await api.ledger.apply_fee(declined, Decider(workflow_id=f"FEE-WF-{declined.order_id}"))
    ids = [order.order_id for order in [*orders, *extra, declined]]
    return account_id, ids, batch_id


def newest_first(items: list[dict[str, Any]]) -> bool:
    keys = [(datetime.fromisoformat(item["decided_at"]), item["order_id"]) for item in items]
    return keys == sorted(keys, reverse=True)


async def test_orders_and_journal_are_paged_each_once_in_order(quiet_api: Api) -> None:
    account_id, ids, batch_id = await charge_many(quiet_api, 10**6)

    orders = await all_pages(quiet_api, "/orders", 173, account_id=account_id)

    assert sorted(item["order_id"] for item in orders) == sorted(ids)
    assert len(orders) == len(ids) and newest_first(orders)
    by_id = {item["order_id"]: item for item in orders}
    first = by_id[ids[0]]
    assert first["via"] == f"batch:{batch_id}" and first["refunded"] == 0
    assert first["status"] == "charged" and first["workflow_id"] == f"BATCH-WF-{batch_id}"
    assert by_id[ids[-2]]["via"] == "api"
    assert by_id[ids[-1]]["status"] == "insufficient_funds"
    assert by_id[ids[-1]]["balance_after"] is None

    entries = await all_pages(quiet_api, f"/accounts/{account_id}/entries", 311)

    assert [entry["order_id"] for entry in entries] == ids[:-1]
    assert [entry["kind"] for entry in entries] == ["fee"] * (MANY + 3)
    assert [entry["amount"] for entry in entries] == [-3] * MANY + [-5] * 3
    balances = [entry["balance_after"] for entry in entries]
    assert balances == [10**6 - 3 * n for n in range(1, MANY + 1)] + [
        10**6 - 3 * MANY - 5 * n for n in range(1, 4)
    ]
    numbers = [entry["entry_id"] for entry in entries]
    assert numbers == sorted(numbers)


async def test_orders_are_filtered_by_status_and_by_the_deciding_batch(quiet_api: Api) -> None:
    account_id, ids, batch_id = await charge_many(quiet_api, 10**6)

    by_batch = await all_pages(quiet_api, "/orders", 1000, batch_id=batch_id)
    declined = await all_pages(
        quiet_api, "/orders", 1000, account_id=account_id, status="insufficient_funds"
    )
    charged = await all_pages(quiet_api, "/orders", 999, account_id=account_id, status="charged")

    assert sorted(item["order_id"] for item in by_batch) == sorted(ids[:MANY])
    assert {item["via"] for item in by_batch} == {f"batch:{batch_id}"}
    assert [item["order_id"] for item in declined] == [ids[-1]]
    assert len(charged) == MANY + 3 and newest_first(charged)
    none = await quiet_api.http.get("/orders", params={"batch_id": unique("nobatch")})
    assert none.json() == {"items": [], "next_after": None}


async def test_batches_are_paged_newest_first_with_their_filters(quiet_api: Api) -> None:
    prefix = unique("b")
    start = datetime(2030, 1, 1, tzinfo=UTC)
    rows = [
        {
            "batch_id": f"{prefix}-{n:04d}",
            "kind": "fee" if n % 3 else "script",
            "script": None if n % 3 else "echo-args",
            "total": 1,
            "items_digest": "0" * 64,
            "workflow_id": f"BATCH-WF-{prefix}-{n:04d}",
            "status": "completed" if n % 2 else "running",
            # Ten batches a second: ties on created_at are broken by batch_id.
            "created_at": start + timedelta(seconds=n // 10),
        }
        for n in range(1_200)
    ]
    async with quiet_api.ledger.write() as conn:
        await conn.execute(insert(batches), rows)
    expected = sorted(rows, key=lambda row: (row["created_at"], row["batch_id"]), reverse=True)

    listed = await all_pages(quiet_api, "/batches", 113)
    scripts = await all_pages(quiet_api, "/batches", 100, kind="script", status="running")

    mine = [item["batch_id"] for item in listed if item["batch_id"].startswith(prefix)]
    assert mine == [row["batch_id"] for row in expected]
    moments = [datetime.fromisoformat(item["created_at"]) for item in listed]
    assert moments == sorted(moments, reverse=True)
    wanted = [r["batch_id"] for r in expected if r["kind"] == "script" and r["status"] == "running"]
    assert [item["batch_id"] for item in scripts if item["batch_id"] in set(mine)] == wanted
    [item] = [item for item in listed if item["batch_id"] == mine[0]]
    assert item["pending"] == 1 and item["created_at"] == "2030-01-01T00:01:59Z"


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/accounts", {"limit": "0"}),
        ("/accounts", {"limit": "1001"}),
        ("/accounts", {"limit": "ten"}),
        ("/accounts", {"after": "not/an id"}),
        ("/accounts", {"after": ""}),
        ("/orders", {"status": "refunded"}),
        ("/orders", {"account_id": "x" * 129}),
        ("/orders", {"batch_id": "a b"}),
        ("/orders", {"after": "o;1"}),
        ("/batches", {"status": "done"}),
        ("/batches", {"kind": "refund-ish"}),
        ("/batches", {"limit": "-1"}),
        ("/scripts/echo-args/runs", {"status": "pending"}),
        ("/scripts/echo-args/runs", {"limit": "1.5"}),
        ("/accounts/any/entries", {"after": "-1"}),
        ("/accounts/any/entries", {"after": str(2**63)}),
        ("/accounts/any/entries", {"after": "one"}),
    ],
)
async def test_bad_paging_and_filters_are_validation_problems(
    quiet_api: Api, path: str, params: dict[str, str]
) -> None:
    assert_problem(await quiet_api.http.get(path, params=params), 422, "validation_error")


async def test_unknown_parents_are_not_found(quiet_api: Api) -> None:
    entries = await quiet_api.http.get(f"/accounts/{unique('none')}/entries")
    runs = await quiet_api.http.get("/scripts/no-such-script/runs")

    assert_problem(entries, 404, "account_not_found")
    assert_problem(runs, 404, "script_not_found")


async def test_a_cursor_that_names_no_row_is_past_the_end(quiet_api: Api) -> None:
    for path in ("/orders", "/batches", "/scripts/echo-args/runs"):
        response = await quiet_api.http.get(path, params={"after": unique("gone")})
        assert response.json() == {"items": [], "next_after": None}, path


async def test_the_last_full_page_says_no_page_follows(quiet_api: Api) -> None:
    account_id = unique("acc")
    await quiet_api.ledger.create_account(account_id, 100)
    for _ in range(4):
        order = FeeOrder(order_id=unique("o"), account_id=account_id, amount=1)
        await quiet_api.ledger.apply_fee(order, Decider(workflow_id=f"FEE-WF-{order.order_id}"))
    path = f"/accounts/{account_id}/entries"

    first = (await quiet_api.http.get(path, params={"limit": 2})).json()
    second = await quiet_api.http.get(path, params={"limit": 2, "after": first["next_after"]})

    assert first["next_after"] == first["items"][-1]["entry_id"]
    assert len(second.json()["items"]) == 2 and second.json()["next_after"] is None


async def test_a_scripts_runs_are_paged_newest_first_with_their_status(quiet_api: Api) -> None:
    prefix = unique("run")
    start = datetime(2030, 6, 1, tzinfo=UTC)
    runs = []
    for n in range(1_500):
        order_id = f"{prefix}-{n:04d}"
        status = "failed" if n % 4 == 0 else "succeeded"
        result = ScriptRunResult(
            order_id=order_id,
            script="echo-args",
            status=status,
            exit_code=1 if status == "failed" else 0,
            stdout="",
            stderr="",
            attempts=1,
            workflow_id=f"SCRIPT-WF-echo-args/{order_id}",
            run_id="r",
        )
        runs.append(
            {
                "script": "echo-args",
                "order_id": order_id,
                "args": "[]",
                "args_hash": "0" * 64,
                "workflow_id": result.workflow_id,
                "status": status,
                "result": result.model_dump_json(),
                "decided_at": start + timedelta(seconds=n // 9),
            }
        )
    # A pending run is not decided: it is in no page.
    pending = {**runs[0], "order_id": f"{prefix}-pending", "status": "pending", "result": None}
    async with quiet_api.ledger.write() as conn:
        await conn.execute(insert(script_runs), [*runs, {**pending, "decided_at": None}])
    expected = sorted(runs, key=lambda row: (row["decided_at"], row["order_id"]), reverse=True)

    listed = await all_pages(quiet_api, "/scripts/echo-args/runs", 250)
    failed = await all_pages(quiet_api, "/scripts/echo-args/runs", 77, status="failed")

    mine = [item["order_id"] for item in listed if item["order_id"].startswith(prefix)]
    assert mine == [row["order_id"] for row in expected]
    mine_failed = [item for item in failed if item["order_id"].startswith(prefix)]
    assert [item["order_id"] for item in mine_failed] == [
        row["order_id"] for row in expected if row["status"] == "failed"
    ]
    assert {item["exit_code"] for item in mine_failed} == {1}
    assert {item["script"] for item in listed} == {"echo-args"}
