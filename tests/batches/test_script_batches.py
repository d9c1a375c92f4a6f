"""Script batches: each key's script run once, by either orchestrator (the default chunks
of keys per activity, or the seed's child workflow per key)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from superscript.batches import client as batch_client
from superscript.ledger import Ledger
from superscript.scripts.records import ScriptRuns
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.batches.submitting import finish, submit
from tests.conftest import Api, serve_app, unique
from tests.script_files import payments_by_order, write_script


async def run_lengths(client: Client, workflow_id: str) -> list[int]:
    """The history length of every run of ``workflow_id``, last to first.

    Read from the histories (each run's start event names the run it continued), never
    from the visibility list, which may not show a closed run yet.
    """
    run_id = (await client.get_workflow_handle(workflow_id).describe()).run_id
    lengths: list[int] = []
    while run_id:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        lengths.append(len(history.events))
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id
    return lengths


async def submit_scripts(api: Api, batch_id: str, script: str, items: list[dict[str, Any]]) -> None:
    body = {"batch_id": batch_id, "kind": "script", "script": script, "items": items}
    assert (await submit(api, body))["total"] == len(items)


async def test_batch_with_already_run_keys_and_repeats(api: Api, client: Client) -> None:
    data_dir = api.settings.data_dir
    paid_before = unique("order")
    single = await api.http.post(
        "/scripts/collect-payment/runs", json={"order_id": paid_before, "args": ["500", "EUR"]}
    )
    assert single.status_code == 200 and single.json()["status"] == "succeeded"

    fresh = [unique("order") for _ in range(5)]
    conflicting = unique("order")
    await api.http.post(
        "/scripts/collect-payment/runs", json={"order_id": conflicting, "args": ["1", "EUR"]}
    )
    items = [
        *({"order_id": order, "args": ["100", "EUR"]} for order in fresh),
        {"order_id": paid_before, "args": ["500", "EUR"]},
        {"order_id": fresh[0], "args": ["100", "EUR"]},
        {"order_id": conflicting, "args": ["2", "EUR"]},
    ]
    batch_id = unique("batch")
    await submit_scripts(api, batch_id, "collect-payment", items)
    status = await finish(api, client, batch_id)

    assert status == {
        "batch_id": batch_id,
        "kind": "script",
        "status": "completed",
        "total": 8,
        "succeeded": 5,
        "replayed": 2,
        "failed": 1,
        "pending": 0,
    }
    collected = payments_by_order(data_dir)
    assert all(collected[order] == 1 for order in [*fresh, paid_before, conflicting])

    # Resubmitted, and the same keys in a new batch: nothing runs again.
    await submit_scripts(api, batch_id, "collect-payment", items)
    assert await finish(api, client, batch_id) == status
    second = unique("batch")
    await submit_scripts(api, second, "collect-payment", items[:6])
    again = await finish(api, client, second)
    assert (again["succeeded"], again["replayed"], again["failed"]) == (0, 6, 0)
    assert payments_by_order(data_dir) == collected

    failed = (await api.http.get(f"/batches/{batch_id}/items?status=failed")).json()["items"]
    assert [item["order_id"] for item in failed] == [conflicting]
    assert failed[0]["outcome"] == "idempotency_key_reused"


async def test_unknown_script_is_refused(api: Api) -> None:
    response = await api.http.post(
        "/batches",
        json={
            "batch_id": unique("batch"),
            "kind": "script",
            "script": "no-such-script",
            "items": [{"order_id": unique("order"), "args": []}],
        },
    )
    assert response.status_code == 404
    assert response.json()["code"] == "script_not_found"


NOOP = "#!/bin/sh\n# superscript.description: does nothing, quickly\nexit 0\n"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_ten_thousand_items_stay_within_temporal_limits(
    tmp_path: Path, settings: Settings, ledger: Ledger, client: Client
) -> None:
    """The default orchestrator: a chunk activity per 500 keys, so a short history, and
    every key run by the batch itself (no workflow per key)."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "noop.sh", NOOP)
    quick = settings.model_copy(update={"scripts_dir": scripts})
    total = int(os.environ.get("SUPERSCRIPT_TEST_BIG_BATCH", "10000"))
    running: Worker = build_worker(client, ledger, quick)
    async with running, serve_app(quick, ledger, client) as api:
        batch_id = unique("big")
        # Keys of this batch alone: the ledger is shared, and a key run before is only replayed.
        items = [{"order_id": f"{batch_id}-{index}", "args": []} for index in range(total)]
        await submit_scripts(api, batch_id, "noop", items)
        status = await finish(api, client, batch_id)

    assert (status["succeeded"], status["pending"], status["status"]) == (total, 0, "completed")
    lengths = await run_lengths(client, f"BATCH-WF-{batch_id}")
    assert lengths and max(lengths) < 1_000, lengths
    for order_id in (f"{batch_id}-0", f"{batch_id}-{total - 1}"):
        record = await ScriptRuns(ledger.engine).get("noop", order_id)
        assert record is not None and record.result is not None
        assert record.result.workflow_id == f"BATCH-WF-{batch_id}"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_seeds_orchestrator_continues_as_new(
    tmp_path: Path,
    settings: Settings,
    ledger: Ledger,
    client: Client,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``orchestrator: children``, one child workflow per key: more children than a run's
    small plan (chunks of 10, a 300-event history) holds, so continue-as-new keeps each
    run bounded."""
    monkeypatch.setattr(batch_client, "SCRIPT_CHUNK_SIZE", 10)
    monkeypatch.setattr(batch_client, "MAX_HISTORY_EVENTS", 300)
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "noop.sh", NOOP)
    quick = settings.model_copy(update={"scripts_dir": scripts})
    total = 300
    async with build_worker(client, ledger, quick), serve_app(quick, ledger, client) as api:
        batch_id = unique("seed")
        # Keys of this batch alone: the ledger is shared, and a key run before is only replayed.
        items = [{"order_id": f"{batch_id}-{index}", "args": []} for index in range(total)]
        body = {"batch_id": batch_id, "kind": "script", "script": "noop", "items": items}
        assert (await submit(api, {**body, "orchestrator": "children"}))["total"] == total
        status = await finish(api, client, batch_id)

    assert (status["succeeded"], status["pending"], status["status"]) == (total, 0, "completed")
    lengths = await run_lengths(client, f"BATCH-WF-{batch_id}")
    assert len(lengths) > 1, "the batch should have continued as new"
    assert max(lengths) < 1_000, lengths
    for order_id in (f"{batch_id}-0", f"{batch_id}-{total - 1}"):
        record = await ScriptRuns(ledger.engine).get("noop", order_id)
        assert record is not None and record.result is not None
        assert record.result.workflow_id == f"SCRIPT-WF-noop/{order_id}"
