"""What the demo prints, and the record of what it set out to show and what it saw.

Every demonstration ends the same way, through :meth:`Narrator.conclude`: what we
expected, what happened, and the verdict, both printed and kept for the summary.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.markup import escape
from rich.rule import Rule
from rich.table import Table


def tally(statuses: Counter[int]) -> str:
    """``10 answered 200`` or ``9 answered 200, 1 answered 202``."""
    return ", ".join(f"{count} answered {status}" for status, count in sorted(statuses.items()))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def money(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{whole:,}.{part:02d}"


@dataclass
class Check:
    demonstration: str
    expected: str
    observed: str
    ok: bool


class Narrator:
    """The story told on a console, and one :class:`Check` per thing it set out to show."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.checks: list[Check] = []

    def title(self, text: str) -> None:
        self.console.print(Rule(f"[bold]{text}[/bold]"))

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def why(self, text: str) -> None:
        self.console.print(f"[dim italic]{text}[/dim italic]", highlight=False)

    def verdict(self, ok: bool, text: str) -> None:
        mark = "[bold green]✓[/bold green]" if ok else "[bold red]✗[/bold red]"
        self.console.print(f"{mark} {text}", highlight=False)

    def conclude(
        self, demonstration: str, *, expected: str, observed: str, ok: bool, shown: str, missed: str
    ) -> bool:
        """Record what we expected and what happened; say ``shown`` if it is what we
        expected, else ``missed``. Whether it was."""
        self.checks.append(Check(demonstration, expected, observed, ok))
        self.verdict(ok, shown if ok else missed)
        return ok

    def could_not_go_on(self, demonstration: str, reason: str) -> None:
        """The API did not answer as the contract says: the demonstration failed."""
        self.conclude(
            demonstration,
            expected="answers as the contract says",
            observed=reason,
            ok=False,
            shown="",
            missed=escape(reason),
        )

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    def summary(self) -> Table:
        table = Table(title="What the demo showed")
        table.add_column("demonstration")
        table.add_column("expected")
        table.add_column("observed")
        table.add_column("", justify="center")
        for check in self.checks:
            mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
            table.add_row(check.demonstration, check.expected, escape(check.observed), mark)
        return table
