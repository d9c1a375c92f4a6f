"""Demonstration 4, the orchestrated batch: orders paid before the batch are replayed, not
paid again."""

from __future__ import annotations

from typing import Any, Final

from superscript.cli.demo.calls import DemoError
from superscript.cli.demo.scene import BATCH_SIZE, PAYMENT_ARGS, SCRIPT, Scene
from superscript.cli.http import json_object, problem
from superscript.cli.progress import counts_table, wait_for_batch

NAME = "4. orchestrated batch"
BATCH_WAIT_SECONDS: Final = 180.0


async def orchestrated_batch(scene: Scene) -> None:
    tell = scene.tell
    tell.title("4. The orchestrated batch: replay, never repeat")
    tell.why(
        "A nightly batch collects payments for many orders. Some customers already paid "
        "during the day, so the batch must skip them. The batch workflow starts one "
        "SCRIPT-WF per order: where one already ran, its outcome is replayed."
    )
    paid_before = scene.paid_once or scene.id("pay-order")
    counter_paid = await _pay_at_counter(scene)
    fresh = [scene.id(f"batch-order-{number}") for number in range(1, BATCH_SIZE - 1)]
    orders = [paid_before, counter_paid, *fresh]
    batch_id = scene.id("batch")
    tell.say(
        f"Submitting batch {batch_id}: {len(orders)} orders, of which {paid_before} "
        f"(step 3) and {counter_paid} are already paid…"
    )
    status = await _run_batch(scene, batch_id, orders)
    expected = {"succeeded": len(fresh), "replayed": 2, "failed": 0, "pending": 0}
    observed = {key: status[key] for key in expected}
    counted = await scene.payments.count(*orders)
    payments_ok = counted is None or all(counted[order] == 1 for order in orders)
    tell.conclude(
        NAME,
        expected=f"{len(fresh)} succeeded, 2 replayed, one payment per order",
        observed=", ".join(f"{value} {key}" for key, value in observed.items())
        + ("" if counted is None else f"; payments per order {sorted(counted.values())}"),
        ok=status["status"] == "completed" and observed == expected and payments_ok,
        shown=f"{len(fresh)} new orders were paid; the 2 paid before were replayed, not paid "
        "again"
        + ("" if counted is None else ": payments.log has exactly one line per order")
        + ".",
        missed=f"Expected {expected}, saw {observed}"
        + ("" if counted is None else f" and payments {counted}"),
    )


async def _pay_at_counter(scene: Scene) -> str:
    """One order paid by a single run before the batch: the order."""
    order_id = scene.id("counter-order")
    scene.tell.say(f"A customer pays order {order_id} at the counter first (a single run)…")
    path = f"/scripts/{SCRIPT}/runs"
    single = await scene.api.request(
        "POST", path, json={"order_id": order_id, "args": PAYMENT_ARGS}
    )
    single = await scene.api.settle(single, f"{path}/{order_id}")
    if single.status_code != 200 or json_object(single).get("status") != "succeeded":
        raise DemoError(f"the single run of {order_id} answered {problem(single)}")
    return order_id


async def _run_batch(scene: Scene, batch_id: str, orders: list[str]) -> dict[str, Any]:
    """Submit the script batch of ``orders`` and wait for it: its last status."""
    accepted = await scene.api.submit_batch(
        {
            "batch_id": batch_id,
            "kind": "script",
            "script": SCRIPT,
            "items": [{"order_id": order, "args": PAYMENT_ARGS} for order in orders],
        }
    )
    scene.tell.say(f"  accepted: workflow {accepted['workflow_id']}, {accepted['total']} items")
    try:
        status = await wait_for_batch(scene.api, batch_id, scene.tell.console, BATCH_WAIT_SECONDS)
    except TimeoutError as exc:
        raise DemoError(str(exc)) from exc
    scene.tell.console.print(counts_table(status))
    return status
