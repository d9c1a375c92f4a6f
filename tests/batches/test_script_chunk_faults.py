"""A chunk activity's worker killed mid-chunk: at most ``max_attempts`` starts per key, ever.

The worker process is frozen at a fail point and SIGKILLed there, then the chunks are
retried on a fresh worker. Keys whose attempts were claimed but whose ends were never
stored count as started, exactly as the single-run workflow treats a lost attempt, and are
decided ``failed`` ("not run again"); every key not claimed yet runs once, on the retry.
Counted on disk and in the ledger.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from superscript.batches.activities import SCRIPT_SLOTS
from superscript.batches.models import batch_workflow_id
from superscript.batches.script_slots import LOOKAHEAD, SLOTS_FULL
from superscript.ledger import Ledger
from superscript.scripts.models import NOT_RUN_AGAIN_REASON
from superscript.scripts.records import ScriptRuns
from superscript.settings import Settings
from tests.batches.submitting import finish, submit
from tests.conftest import NewStack, serve_app, unique
from tests.processes import wait_for_file
from tests.script_files import payments_by_order, write_script

PAY_ONCE = """#!/bin/sh
# superscript.description: pays once per start (test)
printf '%s %s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" "$SUPERSCRIPT_ORDER_ID" \\
  >>"$SUPERSCRIPT_DATA_DIR/payments.log"
"""
BEFORE_RECORD = "script-chunk-before-record"
ORDERS = 100
CHUNKS = 2  # of 50 keys each, both on the doomed worker


async def killed_at(
    freeze: str,
    tmp_path: Path,
    new_stack: NewStack,
    client: Client,
    settings: Settings,
    ledger: Ledger,
) -> tuple[str, list[str], dict[str, int]]:
    """A batch of ``ORDERS`` keys whose worker is SIGKILLed at ``freeze``, then finished by
    a fresh worker: the batch, its orders and its final counts."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "pay-once.sh", PAY_ONCE)
    failpoints = tmp_path / "failpoints"
    stack = new_stack(SUPERSCRIPT_SCRIPTS_DIR=str(scripts))
    doomed = stack.start_worker(
        {"SUPERSCRIPT_FAILPOINTS": freeze, "SUPERSCRIPT_FAILPOINT_DIR": str(failpoints)}
    )
    # The API in this process (no worker in it): the stack's workers run the batch.
    api_settings = settings.model_copy(update={"scripts_dir": scripts, "data_dir": tmp_path})
    orders = [unique("order") for _ in range(ORDERS)]
    batch_id = unique("batch")
    async with serve_app(api_settings, ledger, client) as api:
        items = [{"order_id": order, "args": []} for order in orders]
        body = {"batch_id": batch_id, "kind": "script", "script": "pay-once", "items": items}
        await submit(api, body)
        await wait_for_file(failpoints / f"{freeze}.hit", doomed)
        doomed.kill()
        survivor = stack.start_worker()
        try:
            status = await finish(api, client, batch_id)
        finally:
            assert await survivor.terminate() == 0
    assert (status["succeeded"] + status["failed"], status["pending"]) == (ORDERS, 0)
    return batch_id, orders, status


async def lost_keys(ledger: Ledger, data_dir: Path, orders: list[str], batch_id: str) -> int:
    """Checks every key started at most once, decided by the batch; the keys lost."""
    paid = payments_by_order(data_dir)
    runs = ScriptRuns(ledger.engine)
    lost = 0
    for order in orders:
        assert paid[order] <= 1, order
        attempts = await runs.attempts("pay-once", order)
        assert [attempt["attempt"] for attempt in attempts] == [1]
        record = await runs.get("pay-once", order)
        assert record is not None and record.result is not None
        assert record.result.workflow_id == batch_workflow_id(batch_id)
        if record.result.status == "succeeded":
            assert paid[order] == 1
        else:
            assert record.result.reason == NOT_RUN_AGAIN_REASON and record.result.attempts == 1
            lost += 1
    return lost


async def test_worker_killed_mid_chunk_never_starts_a_key_twice(
    tmp_path: Path, new_stack: NewStack, client: Client, ledger: Ledger, settings: Settings
) -> None:
    """Frozen right before it stores a group's ends: its scripts ran, nothing recorded."""
    batch_id, orders, status = await killed_at(
        BEFORE_RECORD, tmp_path, new_stack, client, settings, ledger
    )
    # The frozen group's ends were never stored: those keys are not run again.
    assert await lost_keys(ledger, tmp_path, orders, batch_id) == status["failed"] >= 1


async def test_a_killed_worker_loses_only_its_runs_in_flight(
    tmp_path: Path, new_stack: NewStack, client: Client, ledger: Ledger, settings: Settings
) -> None:
    """Frozen when a chunk must wait for a slot (all of them busy) with keys still to claim:
    only the keys that held a slot (at most ``SCRIPT_SLOTS``) and the few claimed ahead of
    one (``LOOKAHEAD`` per chunk) were claimed, so only they end "not run again"; every
    other key is run by the retried chunk and succeeds."""
    batch_id, orders, status = await killed_at(
        SLOTS_FULL, tmp_path, new_stack, client, settings, ledger
    )
    lost = await lost_keys(ledger, tmp_path, orders, batch_id)
    assert 1 <= lost == status["failed"] <= SCRIPT_SLOTS + LOOKAHEAD * CHUNKS
    assert status["succeeded"] == ORDERS - lost
