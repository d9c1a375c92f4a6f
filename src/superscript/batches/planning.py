"""Planning a chunk of script items: claim each key, decide what needs no run at all.

The batch's side of a script run ends here; the run itself is the scripts package's:
its registry (``Registry.get``) and its claim of each key (``scripts.client.claim_key``,
which the API's runs use too).
"""

from __future__ import annotations

import json

from superscript.batches.models import ItemDone, PlannedRun, ScriptPlan
from superscript.batches.reading import get_batch, pending_items
from superscript.batches.recording import record_items
from superscript.batches.schema import batch_items
from superscript.ledger import IdempotencyKeyReused, Ledger
from superscript.scripts import Registry, ScriptNotFound
from superscript.scripts.client import claim_key
from superscript.scripts.records import ScriptRuns


async def plan_script_chunk(
    ledger: Ledger, batch_id: str, start: int, end: int, registry: Registry, runs: ScriptRuns
) -> ScriptPlan:
    """Claim each pending item's key with its args; decide what needs no run at all.

    A key claimed with other args fails as ``idempotency_key_reused``; a key whose run
    is already decided is ``replayed`` with that outcome; the rest are to be started.
    """
    batch = await get_batch(ledger, batch_id)
    assert batch is not None and batch.script is not None
    script = batch.script
    async with ledger.engine.connect() as conn:
        rows = await pending_items(
            conn, batch_id, start, end, batch_items.c.order_id, batch_items.c.args
        )
    try:
        spec = registry.get(script)
    except ScriptNotFound as exc:
        # Every item fails with the reason; nothing is claimed, nothing is to be started.
        unknown = [
            ItemDone(seq=seq, status="failed", outcome=exc.code, detail=str(exc))
            for seq, _order_id, _args in rows
        ]
        counts = await record_items(ledger, batch_id, unknown)
        return ScriptPlan(script=script, max_attempts=1, timeout_seconds=1, runs=[], counts=counts)
    decided: list[ItemDone] = []
    planned: list[PlannedRun] = []
    for seq, order_id, encoded in rows:
        step = await _plan_item(runs, script, seq, order_id, json.loads(encoded))
        if isinstance(step, PlannedRun):
            planned.append(step)
        else:
            decided.append(step)
    counts = await record_items(ledger, batch_id, decided)
    return ScriptPlan(
        script=script,
        max_attempts=spec.max_attempts,
        timeout_seconds=spec.timeout_seconds,
        runs=planned,
        counts=counts,
    )


async def _plan_item(
    runs: ScriptRuns, script: str, seq: int, order_id: str, args: list[str]
) -> ItemDone | PlannedRun:
    """The item's end when its key needs no run, else the run to start for it."""
    try:
        record = await claim_key(runs, script, order_id, args)
    except IdempotencyKeyReused as exc:
        return ItemDone(seq=seq, status="failed", outcome=exc.code, detail=exc.detail)
    if record.result is not None:
        return ItemDone(
            seq=seq,
            status="replayed",
            outcome=record.result.status,
            exit_code=record.result.exit_code,
        )
    # The ID the key was claimed under, into the batch's history with the plan.
    return PlannedRun(seq=seq, order_id=order_id, args=args, workflow_id=record.workflow_id)
