"""What every demonstration works with: the API, the narrator, the payments log, and the
run's tag (every identifier carries it, so a demo run touches nothing of any other)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from rich.markup import escape

from superscript.cli.demo.calls import Answers, DemoApi
from superscript.cli.demo.narration import Narrator, money, plural, tally
from superscript.cli.demo.payments import PaymentsLog
from superscript.cli.http import problem

SCRIPT: Final = "collect-payment"
PAYMENT_ARGS: Final = ["1999", "USD"]
"""What every demo payment collects: 19.99 USD."""
OPENING_BALANCE: Final = 10_000
FEE: Final = 1_250
CONCURRENT_CALLS: Final = 10
NAIVE_SCRIPT_RUNS: Final = 3
BATCH_SIZE: Final = 5


@dataclass
class Scene:
    api: DemoApi
    tell: Narrator
    payments: PaymentsLog
    tag: str
    paid_once: str | None = None
    """The order that the single payment script paid (demonstration 3), for the batch."""

    def id(self, prefix: str) -> str:
        return f"demo-{prefix}-{self.tag}"

    async def new_account(self, prefix: str) -> str:
        account_id = self.id(prefix)
        await self.api.expect(
            "POST", "/accounts", 201, json={"account_id": account_id, "balance": OPENING_BALANCE}
        )
        self.tell.say(f"Opened account [bold]{account_id}[/bold] with {money(OPENING_BALANCE)}.")
        return account_id

    def say_answers(self, answers: Answers, details: str) -> None:
        """``answers: 10 answered 200; 1 distinct answer; DETAILS``, and the first answer
        when not every one was a 200."""
        distinct = plural(len(answers.bodies), "distinct answer")
        self.tell.say(f"  answers: {tally(answers.statuses)}; {distinct}; {details}")
        if not answers.all_200:
            self.tell.say(f"  first answer: {escape(str(problem(answers.responses[0])))}")
