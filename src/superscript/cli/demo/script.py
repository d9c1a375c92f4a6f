"""Demonstration 3, the single payment script: ten concurrent requests, one run, one
payment."""

from __future__ import annotations

from superscript.cli.demo.narration import plural
from superscript.cli.demo.scene import CONCURRENT_CALLS, PAYMENT_ARGS, SCRIPT, Scene

NAME = "3. single payment script"


async def single_script(scene: Scene) -> None:
    tell = scene.tell
    tell.title("3. The single payment script: one run per order")
    tell.why(
        f"The same script, {SCRIPT}, through POST /scripts/{SCRIPT}/runs: the seed's "
        f"SinglePaymentCollectionWorkflow, workflow SCRIPT-WF-{SCRIPT}/{{order_id}}. The "
        "script itself is as unsafe as before; the workflow ID makes it run once."
    )
    order_id = scene.id("pay-order")
    path = f"/scripts/{SCRIPT}/runs"
    tell.say(f"Sending POST {path} for order {order_id} {CONCURRENT_CALLS} times at once…")
    answers = await scene.api.storm(
        CONCURRENT_CALLS,
        path,
        {"order_id": order_id, "args": PAYMENT_ARGS},
        settle=f"{path}/{order_id}",
    )
    first = answers.first
    distinct = plural(len(answers.bodies), "distinct answer")
    scene.say_answers(
        answers,
        f"status {first.get('status')}, attempts {first.get('attempts')}, "
        f"run ID {', '.join(map(str, answers.run_ids))}",
    )
    answered = answers.all_200 and len(answers.bodies) == 1 and first.get("status") == "succeeded"
    counted = await scene.payments.count(order_id) if answered else None
    lines = None if counted is None else counted[order_id]
    in_log = (
        "payments.log not visible" if lines is None else f"{plural(lines, 'line')} in payments.log"
    )
    ok = tell.conclude(
        NAME,
        expected="one run, one payment, identical answers",
        observed=f"{distinct}, {in_log}",
        ok=answered and lines in (None, 1),
        shown=f"The script ran once for {CONCURRENT_CALLS} requests"
        + ("" if lines is None else f" ({plural(lines, 'line')} in payments.log)")
        + "; every caller got the same result.",
        missed=f"Expected one run; saw {distinct} and "
        f"{lines if lines is not None else 'unknown'} payments.",
    )
    if ok:
        scene.paid_once = order_id
