"""The payments the example script made, as its log (``payments.log``) tells them.

The bundled ``collect-payment`` writes one line per payment into the stack's data dir:
``KEY ORDER_ID AMOUNT CURRENCY attempt=N``. The demo counts them to show how often an
order was really paid, when it can see that file (a remote stack's it cannot).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from superscript.cli.demo.narration import Narrator


def payment_lines(log: Path) -> Counter[str] | None:
    """How many payments each order got, from the example script's log; None if unreadable."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return None
    counts: Counter[str] = Counter()
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 2:
            counts[parts[1]] += 1
    return counts


class PaymentsLog:
    """One stack's ``payments.log``, as far as this demo can see it."""

    def __init__(self, path: Path, tell: Narrator) -> None:
        self.path = path
        self.tell = tell
        # None until the first look tells whether this demo can see the stack's log.
        self.visible: bool | None = None

    async def count(self, *orders: str) -> dict[str, int] | None:
        """Lines of payments.log per order; None when the demo cannot see the stack's log.

        Called once the stack has paid at least one of ``orders``: a log that shows none
        of them is another one (the stack is remote, or uses another data dir).
        """
        if self.visible is False:
            return None
        counts = await asyncio.to_thread(payment_lines, self.path)
        seen = counts is not None and any(counts[order] for order in orders)
        if not seen and self.visible is None:
            self.visible = False
            self.tell.say(
                f"[yellow]Cannot see these payments in {self.path}[/yellow] (the "
                "stack is remote or uses another data dir): relying on the API's answers."
            )
            return None
        self.visible = True
        return {order: (counts or Counter())[order] for order in orders}
