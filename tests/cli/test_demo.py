"""``superscript demo`` against a real API and worker: the story, and the payments it made."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from superscript.cli import app
from superscript.cli.demo.narration import money, plural
from superscript.cli.demo.payments import payment_lines
from tests.cli.runner import invoke
from tests.commands import api_url, run_command, up_ports
from tests.conftest import StartApiAndWorker
from tests.processes import service_env


def test_small_helpers(tmp_path: Path) -> None:
    assert money(10_000) == "100.00" and money(1_250) == "12.50" and money(7) == "0.07"
    assert plural(1, "run ID") == "1 run ID" and plural(2, "run ID") == "2 run IDs"
    assert payment_lines(tmp_path / "missing.log") is None
    log = tmp_path / "payments.log"
    log.write_text("k-a a 1 USD attempt=1\nk-a a 1 USD attempt=1\nk-b b 1 USD attempt=1\n\n")
    assert payment_lines(log) == Counter({"a": 2, "b": 1})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_demo_tells_the_four_stories(
    tmp_path: Path, api_and_worker: StartApiAndWorker
) -> None:
    stack = await api_and_worker(SUPERSCRIPT_NAIVE_DELAY="0.2-0.5", COLUMNS="200")
    base = stack.base_url
    code, out = await run_command(stack.env, "demo", "--api", base)
    codes = await stack.stop()
    assert code == 0, out
    assert list(codes.values()) == [0, 0], stack.logs()

    assert f"Using the running stack at {base}" in out
    for phrase in [
        # 1: the naive routes
        "1. The traditional way",
        "The balance dropped twice: 100.00 → 75.00 for ONE order",
        "The script ran 3 times for one order: 3 lines in payments.log",
        # 2: the idempotent fee
        "2. The idempotent fee",
        "10 answered 200; 1 distinct answer; 1 run ID",
        "Charged once: 100.00 → 87.50",
        # 3: the single payment script
        "3. The single payment script",
        "The script ran once for 10 requests (1 line in payments.log)",
        # 4: the orchestrated batch
        "4. The orchestrated batch",
        "3 new orders were paid; the 2 paid before were replayed, not paid again",
        "All four demonstrations showed what they should",
    ]:
        assert phrase in out, f"{phrase!r} not in:\n{out}"
    assert "✗" not in out

    paid = payment_lines(tmp_path / "payments.log")
    assert paid is not None
    naive = [order for order in paid if order.startswith("demo-naive-pay-")]
    once = [order for order in paid if order.startswith("demo-pay-order-")]
    assert len(naive) == 1 and paid[naive[0]] == 3
    assert len(once) == 1 and paid[once[0]] == 1
    # Step 4: the two orders paid before the batch, and three new ones, once each.
    others = {order: n for order, n in paid.items() if order not in (*naive, *once)}
    assert len(others) == 4 and set(others.values()) == {1}


async def test_demo_fails_against_an_unhealthy_stack(clean_env: None) -> None:
    """Something answers, but not healthily: no demonstration, exit 1."""

    async def unhealthy(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'{"status":"unavailable","temporal":"down","database":"ok"}'
        writer.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\nconnection: close\r\n\r\n%s" % (len(body), body)
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(unhealthy, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        code, output = await invoke("demo", "--api", f"http://127.0.0.1:{port}")
    assert code == 1, output
    assert "answers but is not healthy" in output and "temporal" in output


def test_demo_does_not_start_a_stack_for_another_machine(clean_env: None) -> None:
    result = CliRunner().invoke(app, ["demo", "--api", "http://superscript.invalid:8000"])
    assert result.exit_code == 1, result.output
    assert "Nothing answers at http://superscript.invalid:8000" in result.output
    assert "starting a stack" not in result.output


@pytest.mark.slow
async def test_demo_starts_and_stops_its_own_stack(tmp_path: Path) -> None:
    """Nothing at the API address: the demo runs ``superscript up`` itself, then stops it."""
    env = service_env(
        **up_ports(), SUPERSCRIPT_NAIVE_DELAY="0.2-0.5", TMPDIR=str(tmp_path), COLUMNS="200"
    )
    code, out = await run_command(env, "demo", seconds=240)
    assert code == 0, out
    assert f"Nothing answers at {api_url(env)}: starting a stack of its own" in out
    assert "All four demonstrations showed what they should" in out
    assert "Stopping the demo's own stack (SIGTERM)" in out
    (data_dir,) = tmp_path.glob("superscript-demo-*")
    assert str(data_dir) in out
    paid = payment_lines(data_dir / "payments.log")
    assert paid is not None and sorted(paid.values()) == [1, 1, 1, 1, 1, 3]
    # Stopped: nothing answers there any more.
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.TransportError):
            await http.get(f"{api_url(env)}/healthz")
