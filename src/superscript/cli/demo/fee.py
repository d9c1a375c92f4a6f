"""Demonstration 2, the idempotent fee: ten concurrent identical requests, one charge, one
answer."""

from __future__ import annotations

from superscript.cli.demo.narration import money, plural
from superscript.cli.demo.scene import CONCURRENT_CALLS, FEE, OPENING_BALANCE, Scene

NAME = "2. idempotent fee"


async def idempotent_fee(scene: Scene) -> None:
    tell = scene.tell
    tell.title("2. The idempotent fee: one charge per order")
    tell.why(
        "Now the same fee through POST /orders/{order_id}/fee. The order ID is the ID of "
        "a Temporal workflow (FEE-WF-{order_id}), and Temporal runs one workflow per ID: "
        "every request starts it or finds it, and all of them wait for its one outcome."
    )
    account_id = await scene.new_account("fee-acct")
    path = f"/orders/{scene.id('fee-order')}/fee"
    tell.say(f"Sending POST {path} {CONCURRENT_CALLS} times at once, {money(FEE)} each…")
    answers = await scene.api.storm(
        CONCURRENT_CALLS, path, {"account_id": account_id, "amount": FEE}, settle=path
    )
    distinct = plural(len(answers.bodies), "distinct answer")
    run_ids = plural(len(answers.run_ids), "run ID")
    scene.say_answers(answers, f"{run_ids}: " + ", ".join(map(str, answers.run_ids)))
    balance = await scene.api.balance(account_id)
    once = OPENING_BALANCE - FEE
    tell.conclude(
        NAME,
        expected=f"charged once (balance {money(once)}), identical answers, one run ID",
        observed=f"balance {money(balance)}, {distinct}, {run_ids}",
        ok=answers.all_200
        and len(answers.bodies) == 1
        and len(answers.run_ids) == 1
        and balance == once,
        shown=f"Charged once: {money(OPENING_BALANCE)} → {money(balance)}. All "
        f"{CONCURRENT_CALLS} callers got the identical answer from one workflow run.",
        missed=f"Expected one charge and one answer; balance {money(balance)}, {distinct}.",
    )
