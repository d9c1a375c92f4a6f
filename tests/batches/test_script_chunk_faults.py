"""A chunk activity's worker killed mid-chunk: at most ``max_attempts`` starts per key, ever.

The worker process freezes right before it stores a group's ends (its scripts have run,
their attempts are claimed, nothing is recorded) and is SIGKILLed there. The chunk is
retried on a fresh worker: the keys whose attempts were claimed but never ended count as
started, exactly as the single-run workflow treats a lost attempt, and are decided
``failed`` ("not run again"); the rest run once. Counted on disk and in the ledger.
"""

from __future__ import annotations

from pathlib import Path

from temporalio.client import Client

from superscript.batches.models import batch_workflow_id
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
FREEZE = "script-chunk-before-record"


async def test_worker_killed_mid_chunk_never_starts_a_key_twice(
    tmp_path: Path, new_stack: NewStack, client: Client, ledger: Ledger, settings: Settings
) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(scripts, "pay-once.sh", PAY_ONCE)
    failpoints = tmp_path / "failpoints"
    stack = new_stack(SUPERSCRIPT_SCRIPTS_DIR=str(scripts))
    doomed = stack.start_worker(
        {"SUPERSCRIPT_FAILPOINTS": FREEZE, "SUPERSCRIPT_FAILPOINT_DIR": str(failpoints)}
    )
    # The API in this process (no worker in it): the stack's workers run the batch.
    api_settings = settings.model_copy(update={"scripts_dir": scripts, "data_dir": tmp_path})
    orders = [unique("order") for _ in range(100)]
    batch_id = unique("batch")
    async with serve_app(api_settings, ledger, client) as api:
        items = [{"order_id": order, "args": []} for order in orders]
        body = {"batch_id": batch_id, "kind": "script", "script": "pay-once", "items": items}
        await submit(api, body)
        await wait_for_file(failpoints / f"{FREEZE}.hit", doomed)
        doomed.kill()
        survivor = stack.start_worker()
        try:
            status = await finish(api, client, batch_id)
        finally:
            assert await survivor.terminate() == 0

    assert (status["succeeded"] + status["failed"], status["pending"]) == (100, 0)
    paid = payments_by_order(tmp_path)
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
    # The frozen group's ends were never stored: those keys are not run again.
    assert lost == status["failed"] >= 1
