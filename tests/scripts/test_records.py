"""The script run record: one claim per key, and the first stored result kept."""

from __future__ import annotations

from superscript.ledger import IdempotencyKeyReused, Ledger
from superscript.scripts.models import script_workflow_id
from superscript.scripts.records import ScriptRuns, args_digest
from tests.conftest import at_once, unique
from tests.scripts.runs import script_result


async def test_records_claim_once_and_keep_the_first_result(ledger: Ledger) -> None:
    runs = ScriptRuns(ledger.engine)
    order_id = unique("order")
    workflow_id = script_workflow_id("s", order_id)
    args = ["a", "b c", "ü"]

    async def claim(variant: int) -> object:
        try:
            return await runs.claim("s", order_id, [*args, str(variant % 2)], workflow_id)
        except IdempotencyKeyReused as exc:
            return exc

    outcomes = await at_once(8, claim)

    refused = [outcome for outcome in outcomes if isinstance(outcome, IdempotencyKeyReused)]
    assert len(refused) == 4
    record = await runs.get("s", order_id)
    assert record is not None and record.status == "pending" and record.result is None
    assert record.args_hash == args_digest(record.args)

    first = script_result("s", order_id, "first")
    stored = await runs.record_result(first, record.args)
    again = await runs.record_result(script_result("s", order_id, "second"), record.args)
    assert stored.result == again.result == first
    assert again.status == "succeeded" and again.args == record.args

    # A run started without a claim (another path) is recorded all the same.
    other = script_result("s", unique("order"), "unclaimed")
    unclaimed = await runs.record_result(other, ["x"])
    assert unclaimed.result == other and unclaimed.args == ["x"]
