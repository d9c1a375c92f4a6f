"""``superscript demo``: find the stack (or start one), tell the four stories, sum them up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import typer
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel

from superscript.cli import exits
from superscript.cli.demo import batch, fee, naive, script
from superscript.cli.demo.calls import LIMITS, REQUEST_TIMEOUT_SECONDS, DemoApi, DemoError
from superscript.cli.demo.narration import Narrator
from superscript.cli.demo.payments import PaymentsLog
from superscript.cli.demo.scene import SCRIPT, Scene
from superscript.cli.demo.stack import LOOPBACK_HOSTS, own_stack, wait_until_healthy
from superscript.cli.http import ApiError
from superscript.cli.options import ApiUrl, console, load
from superscript.processes import NotReady
from superscript.settings import Settings

STORIES: tuple[tuple[str, Callable[[Scene], Awaitable[None]]], ...] = (
    (naive.NAME, naive.traditional),
    (fee.NAME, fee.idempotent_fee),
    (script.NAME, script.single_script),
    (batch.NAME, batch.orchestrated_batch),
)


async def tell_stories(api: DemoApi, console: Console, payments_log: Path, tag: str) -> bool:
    """The four demonstrations, then their summary; True when each showed what it should."""
    console.print(f"Payments made by {SCRIPT} are counted in {payments_log}.", highlight=False)
    console.print("")
    tell = Narrator(console)
    scene = Scene(api=api, tell=tell, payments=PaymentsLog(payments_log, tell), tag=tag)
    for name, story in STORIES:
        try:
            await story(scene)
        except DemoError as exc:
            tell.could_not_go_on(name, str(exc))
        except ApiError as exc:
            tell.could_not_go_on(name, exc.in_context())
        tell.say("")
    console.print(tell.summary())
    if tell.ok:
        console.print(
            "[bold green]All four demonstrations showed what they should:[/bold green] the "
            "naive routes pay twice; through SuperScript every order is paid exactly once."
        )
    else:
        console.print("[bold red]Some demonstrations did not show what they should.[/bold red]")
    return tell.ok


async def demo(settings: Settings, console: Console, api_url: str | None) -> bool:
    """Run the four demonstrations; True when every one showed what it should."""
    tag = secrets.token_hex(3)
    async with DemoApi(settings, api_url, timeout=REQUEST_TIMEOUT_SECONDS, limits=LIMITS) as api:
        base = api.base
        console.print(
            Panel.fit(
                "[bold]SuperScript demo[/bold]: a payment happens once per order, however "
                "often and however concurrently it is asked for.\n"
                f"API {base}; every ID of this run ends in -{tag}.",
            )
        )
        answer = await api.health()
        if answer is not None:
            if answer.status_code != 200:
                console.print(
                    f"[red]The stack at {base} answers but is not healthy:[/red] "
                    f"{escape(answer.text)}",
                    highlight=False,
                )
                return False
            console.print(f"Using the running stack at {base}.", highlight=False)
            return await tell_stories(api, console, settings.data_dir / "payments.log", tag)
        if (urlsplit(base).hostname or "") not in LOOPBACK_HOSTS:
            console.print(f"[red]Nothing answers at {base}[/red], and it is not this machine.")
            return False
        async with own_stack(base, settings, console, tag) as stack:
            try:
                await wait_until_healthy(base, stack)
            except NotReady as exc:
                console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
                return False
            console.print("The stack is up.")
            return await tell_stories(api, console, stack.log.parent / "payments.log", tag)


def command(api: ApiUrl = None) -> None:
    """The seed's four demonstrations against a running stack, told as a story.

    (1) the naive routes charge twice and pay three times, (2) the idempotent fee charges
    once, (3) the payment script runs once, (4) a batch replays what was paid before.
    Without a stack at the API address it starts its own (superscript up, fresh data dir)
    and stops it at the end. Exit code 1 if any demonstration did not show what it should.
    """
    settings = load()
    try:
        ok = asyncio.run(demo(settings, console, api))
    except KeyboardInterrupt:
        raise typer.Exit(exits.INTERRUPTED) from None
    raise typer.Exit(exits.OK if ok else exits.FAILED)
