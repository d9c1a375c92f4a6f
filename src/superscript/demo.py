"""``superscript demo``: the seed's four demonstrations, told as a story against a live stack.

1. The traditional way: a retried fee request charges twice, a re-run payment script
   collects three times.
2. The idempotent fee: ten concurrent identical requests, one charge, one answer.
3. The single payment script: ten concurrent requests, one run, one payment.
4. The orchestrated batch: orders paid before the batch are replayed, not paid again.

Every identifier carries a random suffix, so a demo run touches nothing of any other.
When nothing answers at the API address, the demo starts its own stack (``superscript up``
on a fresh data dir) and stops it again at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import httpx
from rich.console import Console
from rich.markup import escape
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule
from rich.table import Table

from superscript.batch_cli import auth_headers, default_api_url
from superscript.settings import Settings

SCRIPT: Final = "collect-payment"
PAYMENT_ARGS: Final = ["1999", "USD"]
"""What every demo payment collects: 19.99 USD."""
OPENING_BALANCE: Final = 10_000
FEE: Final = 1_250
CONCURRENT_CALLS: Final = 10
NAIVE_SCRIPT_RUNS: Final = 3
BATCH_SIZE: Final = 5

REQUEST_TIMEOUT_SECONDS: Final = 90.0
"""Above the API's own 30 s wait for an outcome."""
SETTLE_SECONDS: Final = 120.0
"""How long a 202 pending answer is followed up before the demo gives up on it."""
BATCH_WAIT_SECONDS: Final = 180.0
POLL_SECONDS: Final = 0.5
STACK_START_SECONDS: Final = 120.0
STACK_STOP_SECONDS: Final = 45.0
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class DemoError(Exception):
    """The API did not answer as the contract says: this demonstration cannot go on."""


@dataclass
class Check:
    demonstration: str
    expected: str
    observed: str
    ok: bool


@dataclass
class Story:
    """What the demo saw: one line per thing it set out to show."""

    checks: list[Check] = field(default_factory=list)

    def check(self, demonstration: str, expected: str, observed: str, ok: bool) -> bool:
        self.checks.append(Check(demonstration, expected, observed, ok))
        return ok

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)


def tally(statuses: Counter[int]) -> str:
    """``10 answered 200`` or ``9 answered 200, 1 answered 202``."""
    return ", ".join(f"{count} answered {status}" for status, count in sorted(statuses.items()))


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def money(cents: int) -> str:
    whole, part = divmod(cents, 100)
    return f"{whole:,}.{part:02d}"


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


def _body(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer; empty when it is not one."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _problem(response: httpx.Response) -> str:
    body = _body(response)
    if "code" in body:
        return f"{body['code']}: {body.get('detail', '')}"
    return f"HTTP {response.status_code}: {response.text[:200]}"


class Demo:
    """The four demonstrations against one API."""

    def __init__(
        self, http: httpx.AsyncClient, console: Console, payments_log: Path, tag: str
    ) -> None:
        self.http = http
        self.console = console
        self.payments_log = payments_log
        self.tag = tag
        self.story = Story()
        # None until the first look at payments.log tells whether this demo can see it.
        self.log_visible: bool | None = None
        self.paid_once: str | None = None  # the order that step 3 paid

    def id(self, prefix: str) -> str:
        return f"demo-{prefix}-{self.tag}"

    def say(self, text: str) -> None:
        self.console.print(text, highlight=False)

    def why(self, text: str) -> None:
        self.console.print(f"[dim italic]{text}[/dim italic]", highlight=False)

    def verdict(self, ok: bool, text: str) -> None:
        mark = "[bold green]✓[/bold green]" if ok else "[bold red]✗[/bold red]"
        self.console.print(f"{mark} {text}", highlight=False)

    # --- HTTP -----------------------------------------------------------------------------

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise DemoError(f"{method} {path}: the API did not answer ({exc!r})") from exc

    async def expect(self, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        response = await self.request(method, path, **kwargs)
        if response.status_code != status:
            raise DemoError(f"{method} {path} answered {_problem(response)}")
        return _body(response)

    async def settle(self, response: httpx.Response, url: str) -> httpx.Response:
        """A 202 pending answer followed up with GET until the outcome is decided."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while response.status_code == 202:
            if time.monotonic() > deadline:
                raise DemoError(f"{url} still pending after {SETTLE_SECONDS:.0f} s")
            await asyncio.sleep(POLL_SECONDS)
            response = await self.request("GET", url)
        return response

    async def concurrently(
        self, count: int, call: Callable[[], Awaitable[httpx.Response]]
    ) -> list[httpx.Response]:
        """``count`` calls released at the same moment, as a retry storm would send them."""
        barrier = asyncio.Barrier(count)

        async def one() -> httpx.Response:
            await barrier.wait()
            return await call()

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def new_account(self, prefix: str) -> str:
        account_id = self.id(prefix)
        await self.expect(
            "POST",
            "/accounts",
            201,
            json={"account_id": account_id, "balance": OPENING_BALANCE},
        )
        self.say(f"Opened account [bold]{account_id}[/bold] with {money(OPENING_BALANCE)}.")
        return account_id

    async def balance(self, account_id: str) -> int:
        body = await self.expect("GET", f"/accounts/{account_id}", 200)
        return int(body["balance"])

    # --- payments.log -----------------------------------------------------------------------

    async def payments(self, *orders: str) -> dict[str, int] | None:
        """Lines of payments.log per order; None when the demo cannot see the stack's log."""
        if self.log_visible is False:
            return None
        counts = await asyncio.to_thread(payment_lines, self.payments_log)
        seen = counts is not None and any(counts[order] for order in orders)
        if not seen and self.log_visible is None:
            # The stack ran the script, yet its log shows nothing: it is elsewhere.
            self.log_visible = False
            self.say(
                f"[yellow]Cannot see these payments in {self.payments_log}[/yellow] (the "
                "stack is remote or uses another data dir): relying on the API's answers."
            )
            return None
        self.log_visible = True
        return {order: (counts or Counter())[order] for order in orders}

    # --- the four demonstrations ------------------------------------------------------------

    async def traditional(self) -> None:
        name = "1. traditional"
        self.console.print(Rule("[bold]1. The traditional way: a retry pays twice[/bold]"))
        self.why(
            "A client charges a fee for one order. The answer is slow (the naive route waits "
            "like a congested network), so the client retries before the first answer "
            "arrives: two identical requests are in flight at once."
        )
        account_id = await self.new_account("naive-acct")
        order_id = self.id("naive-order")
        path = f"/naive/orders/{order_id}/fee"
        self.say(f"Sending POST {path} twice at once, {money(FEE)} each time…")
        responses = await self.concurrently(
            2, lambda: self.request("POST", path, json={"account_id": account_id, "amount": FEE})
        )
        for number, response in enumerate(responses, 1):
            if response.status_code == 200:
                after = money(_body(response)["balance"])
                self.say(f"  request {number}: 200, fee deducted, balance now {after}")
            else:
                self.say(f"  request {number}: {escape(_problem(response))}")
        balance = await self.balance(account_id)
        twice = OPENING_BALANCE - 2 * FEE
        ok = self.story.check(
            name,
            f"naive fee charged twice (balance {money(twice)})",
            f"balance {money(balance)}",
            balance == twice,
        )
        self.verdict(
            ok,
            f"The balance dropped twice: {money(OPENING_BALANCE)} → {money(balance)} "
            f"for ONE order. The customer was charged twice."
            if ok
            else f"Expected the naive route to charge twice, but the balance is {money(balance)}.",
        )

        self.say("")
        self.why(
            "The same happens with a payment script: an operator re-runs a cron job that "
            "seemed stuck, and a scheduler retries it too."
        )
        pay_order = self.id("naive-pay")
        path = f"/naive/scripts/{SCRIPT}/runs"
        self.say(
            f"Running {SCRIPT} {' '.join(PAYMENT_ARGS)} for order {pay_order} "
            f"{NAIVE_SCRIPT_RUNS} times through POST {path}…"
        )
        body = {"order_id": pay_order, "args": PAYMENT_ARGS}
        responses = await self.concurrently(
            NAIVE_SCRIPT_RUNS, lambda: self.request("POST", path, json=body)
        )
        ran = 0
        for number, response in enumerate(responses, 1):
            if response.status_code == 200 and _body(response)["exit_code"] == 0:
                ran += 1
                stdout = _body(response)["stdout"].strip()
                self.say(f"  run {number}: exit 0, {escape(stdout)!r}")
            else:
                self.say(f"  run {number}: {escape(_problem(response))}")
        counted = await self.payments(pay_order) if ran else None
        if counted is None:
            observed = f"{ran} successful runs (payments.log not visible)"
            ok = ran == NAIVE_SCRIPT_RUNS
        else:
            observed = f"{counted[pay_order]} lines in payments.log"
            ok = ran == NAIVE_SCRIPT_RUNS and counted[pay_order] == NAIVE_SCRIPT_RUNS
        self.story.check(name, f"naive script ran {NAIVE_SCRIPT_RUNS} times", observed, ok)
        self.verdict(
            ok,
            f"The script ran {NAIVE_SCRIPT_RUNS} times for one order: "
            f"{observed}. The customer paid {NAIVE_SCRIPT_RUNS} times."
            if ok
            else f"Expected {NAIVE_SCRIPT_RUNS} payments, saw {observed}.",
        )

    async def idempotent_fee(self) -> None:
        name = "2. idempotent fee"
        self.console.print(Rule("[bold]2. The idempotent fee: one charge per order[/bold]"))
        self.why(
            "Now the same fee through POST /orders/{order_id}/fee. The order ID is the ID of "
            "a Temporal workflow (FEE-WF-{order_id}), and Temporal runs one workflow per ID: "
            "every request starts it or finds it, and all of them wait for its one outcome."
        )
        account_id = await self.new_account("fee-acct")
        order_id = self.id("fee-order")
        path = f"/orders/{order_id}/fee"
        self.say(f"Sending POST {path} {CONCURRENT_CALLS} times at once, {money(FEE)} each…")
        sent = await self.concurrently(
            CONCURRENT_CALLS,
            lambda: self.request("POST", path, json={"account_id": account_id, "amount": FEE}),
        )
        responses = [await self.settle(response, path) for response in sent]
        statuses = Counter(response.status_code for response in responses)
        bodies = {response.text for response in responses}
        run_ids = {_body(response).get("run_id") for response in responses}
        self.say(
            f"  answers: {tally(statuses)}; {plural(len(bodies), 'distinct answer')}; "
            f"{plural(len(run_ids), 'run ID')}: " + ", ".join(str(run_id) for run_id in run_ids)
        )
        if statuses != {200: CONCURRENT_CALLS}:
            self.say(f"  first answer: {escape(_problem(responses[0]))}")
        balance = await self.balance(account_id)
        once = OPENING_BALANCE - FEE
        ok = self.story.check(
            name,
            f"charged once (balance {money(once)}), identical answers, one run ID",
            f"balance {money(balance)}, {plural(len(bodies), 'distinct answer')}, "
            f"{plural(len(run_ids), 'run ID')}",
            statuses == {200: CONCURRENT_CALLS}
            and len(bodies) == 1
            and len(run_ids) == 1
            and balance == once,
        )
        self.verdict(
            ok,
            f"Charged once: {money(OPENING_BALANCE)} → {money(balance)}. All "
            f"{CONCURRENT_CALLS} callers got the identical answer from one workflow run."
            if ok
            else f"Expected one charge and one answer; balance {money(balance)}, "
            f"{plural(len(bodies), 'distinct answer')}.",
        )

    async def single_script(self) -> None:
        name = "3. single payment script"
        self.console.print(Rule("[bold]3. The single payment script: one run per order[/bold]"))
        self.why(
            f"The same script, {SCRIPT}, through POST /scripts/{SCRIPT}/runs: the seed's "
            f"SinglePaymentCollectionWorkflow, workflow SCRIPT-WF-{SCRIPT}/{{order_id}}. The "
            "script itself is as unsafe as before; the workflow ID makes it run once."
        )
        order_id = self.id("pay-order")
        path = f"/scripts/{SCRIPT}/runs"
        get_path = f"/scripts/{SCRIPT}/runs/{order_id}"
        self.say(f"Sending POST {path} for order {order_id} {CONCURRENT_CALLS} times at once…")
        body = {"order_id": order_id, "args": PAYMENT_ARGS}
        sent = await self.concurrently(
            CONCURRENT_CALLS, lambda: self.request("POST", path, json=body)
        )
        responses = [await self.settle(response, get_path) for response in sent]
        statuses = Counter(response.status_code for response in responses)
        bodies = {response.text for response in responses}
        first = _body(responses[0])
        run_ids = {_body(response).get("run_id") for response in responses}
        self.say(
            f"  answers: {tally(statuses)}; {plural(len(bodies), 'distinct answer')}; "
            f"status {first.get('status')}, attempts {first.get('attempts')}, "
            f"run ID {', '.join(map(str, run_ids))}"
        )
        if statuses != {200: CONCURRENT_CALLS}:
            self.say(f"  first answer: {escape(_problem(responses[0]))}")
        answered = (
            statuses == {200: CONCURRENT_CALLS}
            and len(bodies) == 1
            and first.get("status") == "succeeded"
        )
        counted = await self.payments(order_id) if answered else None
        lines = None if counted is None else counted[order_id]
        ok = self.story.check(
            name,
            "one run, one payment, identical answers",
            f"{plural(len(bodies), 'distinct answer')}, "
            + (
                "payments.log not visible"
                if lines is None
                else f"{plural(lines, 'line')} in payments.log"
            ),
            answered and lines in (None, 1),
        )
        if ok:
            self.paid_once = order_id
        self.verdict(
            ok,
            f"The script ran once for {CONCURRENT_CALLS} requests"
            + ("" if lines is None else f" ({plural(lines, 'line')} in payments.log)")
            + "; every caller got the same result."
            if ok
            else f"Expected one run; saw {plural(len(bodies), 'distinct answer')} and "
            f"{lines if lines is not None else 'unknown'} payments.",
        )

    async def orchestrated_batch(self) -> None:
        name = "4. orchestrated batch"
        self.console.print(Rule("[bold]4. The orchestrated batch: replay, never repeat[/bold]"))
        self.why(
            "A nightly batch collects payments for many orders. Some customers already paid "
            "during the day, so the batch must skip them. The batch workflow starts one "
            "SCRIPT-WF per order: where one already ran, its outcome is replayed."
        )
        paid_before = self.paid_once or self.id("pay-order")
        counter_paid = self.id("counter-order")
        self.say(f"A customer pays order {counter_paid} at the counter first (a single run)…")
        single = await self.request(
            "POST", f"/scripts/{SCRIPT}/runs", json={"order_id": counter_paid, "args": PAYMENT_ARGS}
        )
        single = await self.settle(single, f"/scripts/{SCRIPT}/runs/{counter_paid}")
        if single.status_code != 200 or _body(single).get("status") != "succeeded":
            raise DemoError(f"the single run of {counter_paid} answered {_problem(single)}")
        fresh = [self.id(f"batch-order-{number}") for number in range(1, BATCH_SIZE - 1)]
        orders = [paid_before, counter_paid, *fresh]
        batch_id = self.id("batch")
        self.say(
            f"Submitting batch {batch_id}: {len(orders)} orders, of which {paid_before} "
            f"(step 3) and {counter_paid} are already paid…"
        )
        accepted = await self.expect(
            "POST",
            "/batches",
            202,
            json={
                "batch_id": batch_id,
                "kind": "script",
                "script": SCRIPT,
                "items": [{"order_id": order, "args": PAYMENT_ARGS} for order in orders],
            },
        )
        self.say(f"  accepted: workflow {accepted['workflow_id']}, {accepted['total']} items")
        status = await self.wait_batch(batch_id, int(accepted["total"]))
        columns = ("succeeded", "replayed", "failed", "pending", "total")
        table = Table(title=f"batch {batch_id}")
        for column in columns:
            table.add_column(column, justify="right")
        table.add_row(*(str(status[column]) for column in columns))
        self.console.print(table)
        expected = {"succeeded": len(fresh), "replayed": 2, "failed": 0, "pending": 0}
        observed = {key: status[key] for key in expected}
        counted = await self.payments(*orders)
        payments_ok = counted is None or all(counted[order] == 1 for order in orders)
        ok = self.story.check(
            name,
            f"{len(fresh)} succeeded, 2 replayed, one payment per order",
            ", ".join(f"{value} {key}" for key, value in observed.items())
            + ("" if counted is None else f"; payments per order {sorted(counted.values())}"),
            status["status"] == "completed" and observed == expected and payments_ok,
        )
        self.verdict(
            ok,
            f"{len(fresh)} new orders were paid; the 2 paid before were replayed, not paid "
            "again"
            + ("" if counted is None else ": payments.log has exactly one line per order")
            + "."
            if ok
            else f"Expected {expected}, saw {observed}"
            + ("" if counted is None else f" and payments {counted}"),
        )

    async def wait_batch(self, batch_id: str, total: int) -> dict[str, Any]:
        deadline = time.monotonic() + BATCH_WAIT_SECONDS
        columns = (
            TextColumn("  batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        with Progress(*columns, console=self.console) as progress:
            task = progress.add_task(batch_id, total=total)
            while True:
                status = await self.expect("GET", f"/batches/{batch_id}", 200)
                progress.update(task, completed=int(status["total"]) - int(status["pending"]))
                if status["status"] == "completed":
                    return status
                if time.monotonic() > deadline:
                    raise DemoError(f"batch {batch_id} not completed in {BATCH_WAIT_SECONDS} s")
                await asyncio.sleep(POLL_SECONDS)

    async def run(self) -> Story:
        steps = (
            ("1. traditional", self.traditional),
            ("2. idempotent fee", self.idempotent_fee),
            ("3. single payment script", self.single_script),
            ("4. orchestrated batch", self.orchestrated_batch),
        )
        for title, step in steps:
            try:
                await step()
            except DemoError as exc:
                self.story.check(title, "answers as the contract says", str(exc), False)
                self.verdict(False, f"{escape(str(exc))}")
            self.say("")
        return self.story


def summary(story: Story) -> Table:
    table = Table(title="What the demo showed")
    table.add_column("demonstration")
    table.add_column("expected")
    table.add_column("observed")
    table.add_column("", justify="center")
    for check in story.checks:
        mark = "[green]✓[/green]" if check.ok else "[red]✗[/red]"
        table.add_row(check.demonstration, check.expected, escape(check.observed), mark)
    return table


# --- finding or starting the stack ----------------------------------------------------------


async def health(http: httpx.AsyncClient) -> httpx.Response | None:
    """The /healthz answer, or None when nothing listens there."""
    try:
        return await http.get("/healthz", timeout=10)
    except httpx.TransportError:
        return None


def superscript_command() -> list[str]:
    """How to run this installation's ``superscript`` command."""
    beside = Path(sys.executable).parent / "superscript"
    if beside.exists():
        return [str(beside)]
    found = shutil.which("superscript")
    if found:
        return [found]
    return [sys.executable, "-c", "from superscript.cli import main; main()"]


@dataclass
class OwnStack:
    process: asyncio.subprocess.Process
    data_dir: Path
    log: Path

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@contextlib.asynccontextmanager
async def own_stack(
    api: str, settings: Settings, console: Console, tag: str
) -> AsyncIterator[OwnStack]:
    """``superscript up`` on a fresh data dir at the API's address; SIGTERM at the end."""
    parts = urlsplit(api)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    data_dir = Path(tempfile.mkdtemp(prefix="superscript-demo-"))
    log = data_dir / "up.log"
    env = dict(os.environ)
    env.pop("SUPERSCRIPT_DATABASE_URL", None)  # the ledger lives in the new data dir
    env.update(
        SUPERSCRIPT_HOST=host,
        SUPERSCRIPT_PORT=str(port),
        SUPERSCRIPT_DATA_DIR=str(data_dir),
        SUPERSCRIPT_TASK_QUEUE=f"superscript-demo-{tag}",
        SUPERSCRIPT_TEMPORAL_PORT=str(settings.temporal_port),
        SUPERSCRIPT_TEMPORAL_UI_PORT=str(settings.temporal_ui_port),
    )
    console.print(
        f"Nothing answers at {api}: starting a stack of its own (superscript up) with data "
        f"dir [bold]{data_dir}[/bold] (its log: {log}).",
        highlight=False,
    )
    with log.open("ab") as out:
        process = await asyncio.create_subprocess_exec(
            *superscript_command(),
            "up",
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo; the demo stops the stack
        )
    stack = OwnStack(process=process, data_dir=data_dir, log=log)
    try:
        yield stack
    finally:
        if process.returncode is None:
            console.print("Stopping the demo's own stack (SIGTERM)…")
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), STACK_STOP_SECONDS)
            except TimeoutError:
                process.kill()
                await process.wait()
        console.print(f"Its data (payments.log, ledger) stays in {data_dir}.", highlight=False)


async def wait_until_healthy(http: httpx.AsyncClient, stack: OwnStack) -> None:
    deadline = time.monotonic() + STACK_START_SECONDS
    while True:
        if stack.process.returncode is not None:
            raise DemoError(
                f"superscript up exited with {stack.process.returncode}:\n{stack.tail()}"
            )
        answer = await health(http)
        if answer is not None and answer.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise DemoError(
                f"the stack was not healthy in {STACK_START_SECONDS:.0f} s:\n{stack.tail()}"
            )
        await asyncio.sleep(0.25)


async def demo(settings: Settings, console: Console, api: str | None) -> bool:
    """Run the four demonstrations; True when every one showed what it should."""
    api = (api or default_api_url(settings)).rstrip("/")
    tag = secrets.token_hex(3)
    console.print(
        Panel.fit(
            "[bold]SuperScript demo[/bold]: a payment happens once per order, however often "
            "and however concurrently it is asked for.\n"
            f"API {api}; every ID of this run ends in -{tag}.",
        )
    )
    async with httpx.AsyncClient(
        base_url=api,
        headers=auth_headers(settings),
        timeout=REQUEST_TIMEOUT_SECONDS,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
    ) as http:
        answer = await health(http)
        if answer is not None:
            if answer.status_code != 200:
                console.print(
                    f"[red]The stack at {api} answers but is not healthy:[/red] "
                    f"{escape(answer.text)}",
                    highlight=False,
                )
                return False
            payments_log = settings.data_dir / "payments.log"
            console.print(f"Using the running stack at {api}.", highlight=False)
            return await _run(http, console, payments_log, tag)
        host = urlsplit(api).hostname or ""
        if host not in LOOPBACK_HOSTS:
            console.print(f"[red]Nothing answers at {api}[/red], and it is not this machine.")
            return False
        async with own_stack(api, settings, console, tag) as stack:
            try:
                await wait_until_healthy(http, stack)
            except DemoError as exc:
                console.print(f"[red]{escape(str(exc))}[/red]", highlight=False)
                return False
            console.print("The stack is up.")
            return await _run(http, console, stack.data_dir / "payments.log", tag)


async def _run(http: httpx.AsyncClient, console: Console, payments_log: Path, tag: str) -> bool:
    console.print(f"Payments made by {SCRIPT} are counted in {payments_log}.", highlight=False)
    console.print("")
    story = await Demo(http, console, payments_log, tag).run()
    console.print(summary(story))
    if story.ok:
        console.print(
            "[bold green]All four demonstrations showed what they should:[/bold green] the "
            "naive routes pay twice; through SuperScript every order is paid exactly once."
        )
    else:
        console.print("[bold red]Some demonstrations did not show what they should.[/bold red]")
    return story.ok
