"""``POST /batches`` with a CSV body, end to end on SQLite and PostgreSQL.

The real app, worker and dev server; bodies are sent in small pieces, as a stream, so the
route reads them as they arrive. The effects are counted where they are: balances and
charges in the ledger, rows in the batch tables. How a body is cut into records and its
digest: ``tests/batches/test_csv_stream.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.client import Client

from superscript.batches.schema import batch_items, batches
from superscript.ledger import Ledger
from tests.batches.submitting import finish
from tests.cli.runner import FEE_HEADER, invoke
from tests.conftest import Api, StartApiAndWorker, unique

CSV = {"Content-Type": "text/csv"}


async def _pieces(text: str, size: int = 7) -> AsyncIterator[bytes]:
    data = text.encode()
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def post_csv(api: Api, text: str, **params: str) -> httpx.Response:
    return await api.http.post("/batches", params=params, content=_pieces(text), headers=CSV)


async def stored_rows(ledger: Ledger, batch_id: str) -> tuple[int, int]:
    """(batches, batch_items) rows of ``batch_id``."""
    async with ledger.engine.connect() as conn:
        found = await conn.scalar(
            select(func.count()).select_from(batches).where(batches.c.batch_id == batch_id)
        )
        items = await conn.scalar(
            select(func.count()).select_from(batch_items).where(batch_items.c.batch_id == batch_id)
        )
    return int(found or 0), int(items or 0)


def fee_text(items: list[dict[str, Any]]) -> str:
    return FEE_HEADER + "".join(f"{i['order_id']},{i['account_id']},{i['amount']}\n" for i in items)


async def test_a_fee_csv_batch_charges_once_and_is_the_json_batch(api: Api, client: Client) -> None:
    rich, poor = unique("rich"), unique("poor")
    await api.ledger.create_account(rich, 1_000)
    await api.ledger.create_account(poor, 5)
    repeat = unique("order")
    items = [
        {"order_id": unique("order"), "account_id": rich, "amount": 100},
        {"order_id": repeat, "account_id": rich, "amount": 20},
        {"order_id": repeat, "account_id": rich, "amount": 20},
        {"order_id": unique("order"), "account_id": poor, "amount": 6},
        {"order_id": unique("order"), "account_id": unique("ghost"), "amount": 1},
    ]
    batch_id = unique("batch")
    accepted = await post_csv(api, fee_text(items), batch_id=batch_id, kind="fee")
    assert accepted.status_code == 202, accepted.text
    assert accepted.json()["total"] == 5
    assert accepted.json()["workflow_id"] == f"BATCH-WF-{batch_id}"
    assert await stored_rows(api.ledger, batch_id) == (1, 5)
    status = await finish(api, client, batch_id)
    assert (status["succeeded"], status["replayed"], status["failed"]) == (2, 1, 2)
    assert (await api.ledger.get_account(rich)).balance == 880
    assert (await api.ledger.get_account(poor)).balance == 5
    assert await api.ledger.charges_for(repeat) == 1

    # The same items as JSON, and as CSV again: the same batch, nothing charged again.
    body = {"batch_id": batch_id, "kind": "fee", "items": items}
    as_json = await api.http.post("/batches", json=body)
    again = await post_csv(api, fee_text(items), batch_id=batch_id, kind="fee")
    assert as_json.status_code == again.status_code == 202, (as_json.text, again.text)
    assert as_json.json() == again.json() == {**accepted.json(), "status": "completed"}
    assert await stored_rows(api.ledger, batch_id) == (1, 5)
    assert (await api.ledger.get_account(rich)).balance == 880

    # Its ID with other items, as CSV: refused, nothing changed.
    other = await post_csv(api, fee_text(items[:4]), batch_id=batch_id, kind="fee")
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused"
    assert await stored_rows(api.ledger, batch_id) == (1, 5)


async def test_a_json_batch_sent_again_as_csv_is_one_batch(api: Api, client: Client) -> None:
    rich = unique("rich")
    await api.ledger.create_account(rich, 1_000)
    items = [{"order_id": unique("order"), "account_id": rich, "amount": n} for n in (1, 2, 3)]
    batch_id = unique("batch")
    first = await api.http.post(
        "/batches", json={"batch_id": batch_id, "kind": "fee", "items": items}
    )
    assert first.status_code == 202, first.text
    await finish(api, client, batch_id)
    again = await post_csv(api, fee_text(items), batch_id=batch_id, kind="fee")
    assert again.status_code == 202, again.text
    assert again.json()["total"] == 3
    assert (await api.ledger.get_account(rich)).balance == 994


async def test_a_script_csv_batch_runs_each_row_once(api: Api, client: Client) -> None:
    o1, o2 = unique("order"), unique("order")
    text = f'order_id,first,second\n{o1},a,"b, c"\n{o2},,x\n'
    batch_id = unique("batch")
    accepted = await post_csv(api, text, batch_id=batch_id, kind="script", script="echo-args")
    assert accepted.status_code == 202, accepted.text
    status = await finish(api, client, batch_id)
    assert (status["total"], status["succeeded"], status["failed"]) == (2, 2, 0)
    run = await api.http.get(f"/scripts/echo-args/runs/{o1}")
    assert run.status_code == 200 and run.json()["attempts"] == 1, run.text
    as_json = {
        "batch_id": batch_id,
        "kind": "script",
        "script": "echo-args",
        "items": [{"order_id": o1, "args": ["a", "b, c"]}, {"order_id": o2, "args": ["", "x"]}],
    }
    same = await api.http.post("/batches", json=as_json)
    assert same.status_code == 202 and same.json()["total"] == 2, same.text


async def test_bad_lines_are_each_named_and_nothing_is_stored(api: Api) -> None:
    rich = unique("rich")
    await api.ledger.create_account(rich, 1_000)
    good = unique("order")
    text = FEE_HEADER + (
        f"{good},{rich},5\n"
        f"bad id,{rich},5\n"
        f"{unique('order')},{rich},1.5\n"
        "\n"
        f"{unique('order')},{rich}\n"
        f"{unique('order')},{rich},7\n"
    )
    batch_id = unique("batch")
    refused = await post_csv(api, text, batch_id=batch_id, kind="fee")
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["code"] == "validation_error"
    assert problem["detail"].startswith("3 bad lines:")
    assert [error["loc"] for error in problem["errors"]] == [
        ["body", "line", 3],
        ["body", "line", 4],
        ["body", "line", 6],
    ]
    assert "amount '1.5'" in problem["errors"][1]["msg"]
    assert await stored_rows(api.ledger, batch_id) == (0, 0)
    assert await api.ledger.charges_for(good) == 0
    assert (await api.ledger.get_account(rich)).balance == 1_000


async def test_headers_and_the_query_are_checked(api: Api) -> None:
    batch_id = unique("batch")
    script_header = "order_id,amount\no-1,5\n"
    cases = [
        (script_header, {"batch_id": batch_id, "kind": "fee"}, "is not 'order_id,account_id"),
        (
            FEE_HEADER + "o-1,a,5\n",
            {"batch_id": batch_id, "kind": "script", "script": "echo-args"},
            "is a fee batch's header",
        ),
        (FEE_HEADER, {"batch_id": batch_id, "kind": "fee"}, "no rows after the header"),
        (FEE_HEADER + "o-1,a,5\n", {"kind": "fee"}, "batch_id: Field required"),
        (FEE_HEADER + "o-1,a,5\n", {"batch_id": batch_id}, "Unable to extract tag"),
        (script_header, {"batch_id": batch_id, "kind": "script"}, "script: Field required"),
        (FEE_HEADER + "o-1,a,5\n", {"batch_id": "a b", "kind": "fee"}, "batch_id: String"),
    ]
    for text, params, said in cases:
        refused = await post_csv(api, text, **params)
        assert refused.status_code == 422, (params, refused.text)
        assert refused.json()["code"] == "validation_error"
        assert said in refused.json()["detail"], (params, refused.json())
    missing = await post_csv(api, script_header, batch_id=batch_id, kind="script", script="nope")
    assert missing.status_code == 404 and missing.json()["code"] == "script_not_found"
    assert await stored_rows(api.ledger, batch_id) == (0, 0)


async def test_an_unknown_kind_is_answered_as_the_json_route_answers_it(api: Api) -> None:
    """``refund`` batches are issue #13's: until then, the JSON route's refusal."""
    batch_id = unique("batch")
    text = "refund_id,order_id,amount\nr-1,o-1,5\n"
    as_csv = await post_csv(api, text, batch_id=batch_id, kind="refund")
    body = {"batch_id": batch_id, "kind": "refund", "items": [{"refund_id": "r-1"}]}
    as_json = await api.http.post("/batches", json=body)
    assert as_csv.status_code == as_json.status_code == 422
    csv_problem, json_problem = as_csv.json(), as_json.json()
    assert csv_problem["code"] == json_problem["code"] == "validation_error"
    assert [e["msg"] for e in csv_problem["errors"]] == [e["msg"] for e in json_problem["errors"]]
    assert [e["type"] for e in csv_problem["errors"]] == ["union_tag_invalid"]


async def test_the_cli_streams_its_file_into_the_same_batch(
    tmp_path: Path, api_and_worker: StartApiAndWorker, ledger: Ledger, clean_env: None
) -> None:
    rich = unique("acc")
    await ledger.create_account(rich, 1_000)
    items = [{"order_id": unique("order"), "account_id": rich, "amount": n} for n in (10, 20)]
    fees = tmp_path / "fees.csv"
    fees.write_text(fee_text(items))
    stack = await api_and_worker()
    batch_id = unique("batch")
    code, out = await invoke(
        "batch", "submit", str(fees), "--batch-id", batch_id, "--wait", "--api", stack.base_url
    )
    assert code == 0, out
    assert f"batch {batch_id} accepted: 2 fee items" in out
    assert (await ledger.get_account(rich)).balance == 970
    assert await stored_rows(ledger, batch_id) == (1, 2)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
        body = {"batch_id": batch_id, "kind": "fee", "items": items}
        same = await http.post("/batches", json=body)
    assert same.status_code == 202 and same.json()["total"] == 2, same.text
    assert (await ledger.get_account(rich)).balance == 970
    codes = await stack.stop()
    assert list(codes.values()) == [0, 0], stack.logs()
