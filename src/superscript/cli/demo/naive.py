"""Demonstration 1, the traditional way: a retried fee charges twice, and a re-run payment
script collects three times."""

from __future__ import annotations

from rich.markup import escape

from superscript.cli.demo.narration import money
from superscript.cli.demo.scene import (
    FEE,
    NAIVE_SCRIPT_RUNS,
    OPENING_BALANCE,
    PAYMENT_ARGS,
    SCRIPT,
    Scene,
)
from superscript.cli.http import json_object, problem

NAME = "1. traditional"


async def traditional(scene: Scene) -> None:
    scene.tell.title("1. The traditional way: a retry pays twice")
    await _retried_fee(scene)
    scene.tell.say("")
    await _rerun_script(scene)


async def _retried_fee(scene: Scene) -> None:
    tell = scene.tell
    tell.why(
        "A client charges a fee for one order. The answer is slow (the naive route waits "
        "like a congested network), so the client retries before the first answer "
        "arrives: two identical requests are in flight at once."
    )
    account_id = await scene.new_account("naive-acct")
    path = f"/naive/orders/{scene.id('naive-order')}/fee"
    tell.say(f"Sending POST {path} twice at once, {money(FEE)} each time…")
    responses = await scene.api.concurrently(
        2, "POST", path, json={"account_id": account_id, "amount": FEE}
    )
    for number, response in enumerate(responses, 1):
        if response.status_code == 200:
            after = money(json_object(response)["balance"])
            tell.say(f"  request {number}: 200, fee deducted, balance now {after}")
        else:
            tell.say(f"  request {number}: {escape(str(problem(response)))}")
    balance = await scene.api.balance(account_id)
    twice = OPENING_BALANCE - 2 * FEE
    tell.conclude(
        NAME,
        expected=f"naive fee charged twice (balance {money(twice)})",
        observed=f"balance {money(balance)}",
        ok=balance == twice,
        shown=f"The balance dropped twice: {money(OPENING_BALANCE)} → {money(balance)} "
        "for ONE order. The customer was charged twice.",
        missed=f"Expected the naive route to charge twice, but the balance is {money(balance)}.",
    )


async def _rerun_script(scene: Scene) -> None:
    tell = scene.tell
    tell.why(
        "The same happens with a payment script: an operator re-runs a cron job that "
        "seemed stuck, and a scheduler retries it too."
    )
    pay_order = scene.id("naive-pay")
    path = f"/naive/scripts/{SCRIPT}/runs"
    tell.say(
        f"Running {SCRIPT} {' '.join(PAYMENT_ARGS)} for order {pay_order} "
        f"{NAIVE_SCRIPT_RUNS} times through POST {path}…"
    )
    responses = await scene.api.concurrently(
        NAIVE_SCRIPT_RUNS, "POST", path, json={"order_id": pay_order, "args": PAYMENT_ARGS}
    )
    ran = 0
    for number, response in enumerate(responses, 1):
        body = json_object(response)
        if response.status_code == 200 and body["exit_code"] == 0:
            ran += 1
            tell.say(f"  run {number}: exit 0, {escape(body['stdout'].strip())!r}")
        else:
            tell.say(f"  run {number}: {escape(str(problem(response)))}")
    counted = await scene.payments.count(pay_order) if ran else None
    if counted is None:
        observed = f"{ran} successful runs (payments.log not visible)"
        ok = ran == NAIVE_SCRIPT_RUNS
    else:
        observed = f"{counted[pay_order]} lines in payments.log"
        ok = ran == NAIVE_SCRIPT_RUNS and counted[pay_order] == NAIVE_SCRIPT_RUNS
    tell.conclude(
        NAME,
        expected=f"naive script ran {NAIVE_SCRIPT_RUNS} times",
        observed=observed,
        ok=ok,
        shown=f"The script ran {NAIVE_SCRIPT_RUNS} times for one order: "
        f"{observed}. The customer paid {NAIVE_SCRIPT_RUNS} times.",
        missed=f"Expected {NAIVE_SCRIPT_RUNS} payments, saw {observed}.",
    )
