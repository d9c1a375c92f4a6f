"""The chunk orchestrator (script batches' default) keeps every per-key guarantee.

A key the API ran is replayed by a batch and the other way round, also while the batch's
run of it is still in flight; the API and a batch on the same keys at once start each key
once, counted on disk (each script appends a line per start).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from superscript.batches.models import batch_workflow_id
from superscript.ledger import Ledger
from superscript.processes import wait_until
from superscript.scripts.records import ScriptRuns
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.batches.submitting import finish, submit
from tests.conftest import Api, serve_app, unique
from tests.script_files import payments_by_order, write_script

# Pays (a line per start in payments.log), then waits for ``release-{order}`` if told to.
PAY = """#!/bin/sh
# superscript.description: pays once per start (test)
printf '%s %s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" "$SUPERSCRIPT_ORDER_ID" \\
  >>"$SUPERSCRIPT_DATA_DIR/payments.log"
if [ "${1:-}" = hold ]; then
  while [ ! -e "$SUPERSCRIPT_DATA_DIR/release-$SUPERSCRIPT_ORDER_ID" ]; do sleep 0.05; done
fi
echo "paid $SUPERSCRIPT_ORDER_ID"
"""


@pytest.fixture
async def pay_api(
    tmp_path: Path, settings: Settings, ledger: Ledger, client: Client
) -> AsyncIterator[Api]:
    """The API and a worker with the ``pay`` script; the API waits a second for a result."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "pay.sh", PAY)
    quick = settings.model_copy(update={"scripts_dir": scripts, "result_wait_seconds": 1.0})
    async with build_worker(client, ledger, quick), serve_app(quick, ledger, client) as api:
        yield api


def script_batch(batch_id: str, orders: list[str], args: list[str]) -> dict[str, Any]:
    items = [{"order_id": order, "args": args} for order in orders]
    return {"batch_id": batch_id, "kind": "script", "script": "pay", "items": items}


async def post_pay(api: Api, order_id: str, args: list[str]) -> httpx.Response:
    return await api.http.post("/scripts/pay/runs", json={"order_id": order_id, "args": args})


async def decided(api: Api, order_id: str) -> dict[str, Any]:
    """The key's run, answered 200 by a later call (the record)."""
    response = await post_pay(api, order_id, [])
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_keys_run_by_a_batch_are_replayed_by_the_api_and_back(
    pay_api: Api, client: Client
) -> None:
    data_dir = pay_api.settings.data_dir
    by_api = unique("order")
    assert (await decided(pay_api, by_api))["workflow_id"].startswith("SCRIPT-WF-pay/")
    fresh = [unique("order") for _ in range(40)]
    batch_id = unique("batch")
    await submit(pay_api, script_batch(batch_id, [by_api, *fresh], []))
    status = await finish(pay_api, client, batch_id)
    assert (status["succeeded"], status["replayed"], status["failed"]) == (40, 1, 0)

    runs = ScriptRuns(pay_api.ledger.engine)
    for order in fresh:
        body = await decided(pay_api, order)
        record = await runs.get("pay", order)
        assert record is not None and record.result is not None
        assert body == record.result.model_dump()
        assert body["workflow_id"] == batch_workflow_id(batch_id) and body["attempts"] == 1
        assert len(await runs.attempts("pay", order)) == 1
    assert payments_by_order(data_dir) == dict.fromkeys([by_api, *fresh], 1)
    # The orchestrator is not the batch's identity: sent again with the seed's, it is the
    # same batch, gone on as it started, and nothing runs again.
    again = {**script_batch(batch_id, [by_api, *fresh], []), "orchestrator": "children"}
    assert (await submit(pay_api, again))["batch_id"] == batch_id
    assert await finish(pay_api, client, batch_id) == status
    assert payments_by_order(data_dir) == dict.fromkeys([by_api, *fresh], 1)


async def test_the_api_waits_for_a_batch_run_in_flight(pay_api: Api, client: Client) -> None:
    data_dir = pay_api.settings.data_dir
    held = unique("order")
    batch_id = unique("batch")
    await submit(pay_api, script_batch(batch_id, [held], ["hold"]))
    runs = ScriptRuns(pay_api.ledger.engine)

    async def started() -> bool:
        return payments_by_order(data_dir)[held] == 1

    await wait_until(started, "the batch's script to start", 60, interval=0.05)

    # In flight: the API finds the batch's claim and waits on it (1 s here), starting nothing.
    pending = await post_pay(pay_api, held, ["hold"])
    assert pending.status_code == 202, pending.text
    assert pending.json()["workflow_id"] == batch_workflow_id(batch_id)
    read = await pay_api.http.get(f"/scripts/pay/runs/{held}")
    assert read.status_code == 202 and read.json()["workflow_id"] == batch_workflow_id(batch_id)
    waiting = asyncio.create_task(post_pay(pay_api, held, ["hold"]))
    (data_dir / f"release-{held}").touch()
    answer = await waiting
    while answer.status_code == 202:  # it came in before the batch recorded: ask again
        answer = await post_pay(pay_api, held, ["hold"])
    assert answer.status_code == 200, answer.text

    status = await finish(pay_api, client, batch_id)
    assert (status["succeeded"], status["replayed"]) == (1, 0)
    record = await runs.get("pay", held)
    assert record is not None and record.result is not None
    assert answer.json() == record.result.model_dump()
    assert record.result.status == "succeeded" and record.result.stdout == f"paid {held}\n"
    assert payments_by_order(data_dir)[held] == 1
    assert len(await runs.attempts("pay", held)) == 1


async def test_api_calls_and_a_batch_at_once_start_each_key_once(
    pay_api: Api, client: Client
) -> None:
    """Behind a barrier: a batch of every key, and two API calls per key."""
    data_dir = pay_api.settings.data_dir
    orders = [unique("order") for _ in range(30)]
    batch_id = unique("batch")
    barrier = asyncio.Barrier(1 + 2 * len(orders))

    async def batch() -> httpx.Response:
        await barrier.wait()
        return await pay_api.http.post("/batches", json=script_batch(batch_id, orders, []))

    async def call(order: str) -> httpx.Response:
        await barrier.wait()
        return await post_pay(pay_api, order, [])

    calls = [call(order) for order in orders for _ in range(2)]
    accepted, *answers = await asyncio.gather(batch(), *calls)
    assert accepted.status_code == 202, accepted.text
    status = await finish(pay_api, client, batch_id)
    assert status["succeeded"] + status["replayed"] == len(orders) and status["failed"] == 0

    runs = ScriptRuns(pay_api.ledger.engine)
    for order, answer in zip([o for o in orders for _ in range(2)], answers, strict=True):
        if answer.status_code == 202:  # waited its second out: the record answers now
            answer = await post_pay(pay_api, order, [])
        assert answer.status_code == 200, answer.text
        record = await runs.get("pay", order)
        assert record is not None and record.result is not None
        assert answer.json() == record.result.model_dump()
        assert record.result.status == "succeeded"
        assert len(await runs.attempts("pay", order)) == 1
    assert payments_by_order(data_dir) == dict.fromkeys(orders, 1)


async def test_csv_batches_choose_the_seeds_orchestrator(pay_api: Api, client: Client) -> None:
    orders = [unique("order") for _ in range(3)]
    batch_id = unique("batch")
    response = await pay_api.http.post(
        f"/batches?batch_id={batch_id}&kind=script&script=pay&orchestrator=children",
        content="order_id\n" + "".join(f"{order}\n" for order in orders),
        headers={"content-type": "text/csv"},
    )
    assert response.status_code == 202, response.text
    status = await finish(pay_api, client, batch_id)
    assert status["succeeded"] == 3
    for order in orders:  # each key ran in its own child workflow
        assert (await decided(pay_api, order))["workflow_id"] == f"SCRIPT-WF-pay/{order}"
    bad = await pay_api.http.post(
        f"/batches?batch_id={unique('batch')}&kind=script&script=pay&orchestrator=nope",
        content="order_id\no-1\n",
        headers={"content-type": "text/csv"},
    )
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"


# Fails its first two attempts, then succeeds: a line per start, with the attempt number.
FLAKY = """#!/bin/sh
# superscript.description: fails twice, then pays (test)
# superscript.max_attempts: 3
printf '%s %s %s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" "$SUPERSCRIPT_ORDER_ID" \\
  "$SUPERSCRIPT_ATTEMPT" >>"$SUPERSCRIPT_DATA_DIR/payments.log"
[ "$SUPERSCRIPT_ATTEMPT" -ge 3 ] || exit 5
"""


async def test_a_chunk_retries_a_key_as_its_header_allows(
    tmp_path: Path, settings: Settings, ledger: Ledger, client: Client
) -> None:
    """``max_attempts: 3``: each attempt claimed in the ledger, numbered in its env."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "flaky.sh", FLAKY)
    quick = settings.model_copy(update={"scripts_dir": scripts})
    orders = [unique("order") for _ in range(3)]
    batch_id = unique("batch")
    async with build_worker(client, ledger, quick), serve_app(quick, ledger, client) as api:
        items = [{"order_id": order, "args": []} for order in orders]
        body = {"batch_id": batch_id, "kind": "script", "script": "flaky", "items": items}
        await submit(api, body)
        status = await finish(api, client, batch_id)

    assert (status["succeeded"], status["failed"]) == (3, 0)
    lines = (tmp_path / "payments.log").read_text().splitlines()
    runs = ScriptRuns(ledger.engine)
    for order in orders:
        assert [line.split()[2] for line in lines if line.split()[1] == order] == ["1", "2", "3"]
        assert [row["attempt"] for row in await runs.attempts("flaky", order)] == [1, 2, 3]
        record = await runs.get("flaky", order)
        assert record is not None and record.result is not None
        assert (record.result.status, record.result.attempts) == ("succeeded", 3)
