"""SIGTERM to the API while requests wait: each is answered, and it exits in time; an idle
connection a client may still pick stays open."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from superscript import runtime
from superscript.fees.models import fee_workflow_id
from superscript.settings import Settings
from tests.api.checks import workflow_exists
from tests.conftest import NewStack, open_ledger, unique
from tests.processes import Service, free_port, wait_until


async def wait_workflows_started(
    client: Client, workflow_ids: list[str], *watched: Service
) -> None:
    async def all_started() -> bool:
        for workflow_id in workflow_ids:
            if not await workflow_exists(client, workflow_id):
                return False
        return True

    await wait_until(all_started, "every request's workflow started", 60, *watched, interval=0.2)


def fee_calls(
    http: httpx.AsyncClient, account_id: str, orders: list[str], amount: int
) -> list[asyncio.Task[httpx.Response]]:
    """One fee request per order, each sent at once and left waiting for its answer."""
    fee = {"account_id": account_id, "amount": amount}
    return [
        asyncio.create_task(http.post(f"/orders/{order_id}/fee", json=fee)) for order_id in orders
    ]


def check_answers(answers: list[httpx.Response | BaseException]) -> Counter[int]:
    """Every request got an answer: done (202 pending here) or a 503 problem; none dropped."""
    codes: Counter[int] = Counter()
    for answer in answers:
        assert isinstance(answer, httpx.Response), f"no answer, the connection was cut: {answer!r}"
        codes[answer.status_code] += 1
        if answer.status_code == 202:
            assert answer.json()["status"] == "pending", answer.text
        else:
            assert answer.status_code == 503, answer.text
            assert answer.headers["content-type"] == "application/problem+json", answer.headers
            assert answer.json()["code"], answer.text
    return codes


@asynccontextmanager
async def api_in_process(
    settings: Settings,
) -> AsyncIterator[tuple[asyncio.Event, asyncio.Task[None]]]:
    """``runtime.serve_api`` on this loop: its stop event (what SIGTERM sets in ``superscript
    api``) and the task serving; stopped, and waited for, at the end."""
    stop = asyncio.Event()
    serving = asyncio.create_task(runtime.serve_api(settings, stop))
    try:
        yield stop, serving
    finally:
        stop.set()
        await asyncio.wait_for(serving, 60)


async def test_api_sigterm_answers_requests_in_flight(
    new_sqlite_stack: NewStack, sqlite_url: str, client: Client
) -> None:
    """20 fee POSTs wait for outcomes no worker can give yet; SIGTERM; each is answered."""
    result_wait = 4.0
    # Only the API (no worker hosted in it): the outcomes wait for a worker that is not there.
    stack = new_sqlite_stack(
        SUPERSCRIPT_RESULT_WAIT_SECONDS=str(result_wait), SUPERSCRIPT_API_WORKER="false"
    )
    account_id = unique("acc")
    orders = [unique("ord") for _ in range(20)]
    api = stack.start_api()
    await stack.wait_ready()
    async with open_ledger(sqlite_url) as ledger:
        await ledger.create_account(account_id, 10_000)
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
        calls = fee_calls(http, account_id, orders, 100)
        # Past the start of its workflow, each request now waits for an outcome.
        await wait_workflows_started(client, [fee_workflow_id(o) for o in orders], api)
        stopping = time.monotonic()
        code = await api.terminate(grace=runtime.API_GRACEFUL_SHUTDOWN_SECONDS + 10)
        took = time.monotonic() - stopping
        answers = await asyncio.gather(*calls, return_exceptions=True)
    assert code == 0, api.output()
    assert took < result_wait + 10, f"the API took {took:.1f}s to stop"
    codes = check_answers(answers)
    assert codes[202] + codes[503] == 20, codes

    # Nothing was lost: with a worker, every order is charged, once.
    stack.start_worker()
    stack.start_api()
    await stack.wait_ready()
    async with httpx.AsyncClient(base_url=stack.base_url, timeout=90) as http:
        again = await asyncio.gather(*fee_calls(http, account_id, orders, 100))
    assert {answer.status_code for answer in again} == {200}, [a.text for a in again]
    async with open_ledger(sqlite_url) as ledger:
        assert [await ledger.charges_for(order_id) for order_id in orders] == [1] * 20
        assert (await ledger.get_account(account_id)).balance == 10_000 - 20 * 100
    codes_at_stop = await stack.stop()
    assert set(codes_at_stop.values()) == {0}, stack.logs()


@pytest.fixture
def in_process(
    tmp_path: Path, sqlite_url: str, temporal_address: str, monkeypatch: pytest.MonkeyPatch
) -> Settings:
    """Settings for ``api_in_process``: the test's SQLite ledger, the session's Temporal (as
    the command would find it, in ``TEMPORAL_ADDRESS``), a free port."""
    monkeypatch.setenv("TEMPORAL_ADDRESS", temporal_address)
    return Settings(
        data_dir=tmp_path,
        database_url=sqlite_url,
        task_queue=unique("tq-in-process"),
        port=free_port(),
    )


async def test_api_requests_cut_at_the_grace_period_get_503(
    in_process: Settings, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Requests still waiting when the grace period ends get a 503 problem, not a 500.

    In process, with a grace of 1 s (the command's is 35 s), so the test is quick: the stop
    event is what SIGTERM sets in ``superscript api``.
    """
    monkeypatch.setattr(runtime, "API_GRACEFUL_SHUTDOWN_SECONDS", 1)
    settings = in_process.model_copy(update={"result_wait_seconds": 60})
    account_id = unique("acc")
    orders = [unique("ord") for _ in range(10)]
    async with open_ledger(settings.database_url) as ledger:
        await ledger.create_account(account_id, 10_000)
    base = f"http://127.0.0.1:{settings.port}"
    async with api_in_process(settings) as (stop, serving):

        async def healthy() -> bool:
            assert not serving.done(), serving
            try:
                async with httpx.AsyncClient(base_url=base, timeout=5) as probe:
                    return (await probe.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(healthy, "the in-process API healthy", 60)
        async with httpx.AsyncClient(base_url=base, timeout=90) as http:
            calls = fee_calls(http, account_id, orders, 10)
            await wait_workflows_started(client, [fee_workflow_id(o) for o in orders])
            stopping = time.monotonic()
            stop.set()
            await asyncio.wait_for(serving, 30)
            took = time.monotonic() - stopping
            answers = await asyncio.gather(*calls, return_exceptions=True)
    assert took < 10, f"the API took {took:.1f}s to stop"
    codes = check_answers(answers)
    assert codes == Counter({503: 10}), codes
    body: dict[str, Any] = answers[0].json()  # type: ignore[union-attr]
    assert body["code"] == "shutting_down", body


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    """One HTTP/1.1 response (status line, headers, Content-Length body); b"" at EOF."""
    head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
    if not head:
        return b""
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return head + await reader.readexactly(length)


async def test_api_keeps_an_idle_connection_past_a_client_pools_expiry(
    in_process: Settings,
) -> None:
    """The server never closes an idle connection a client's pool may still pick.

    httpx keeps an idle connection for 5 s, uvicorn closed it at 5 s: a request sent on it
    as the server closed it was reset unread (``httpx.ReadError`` on a loaded machine). So
    one connection, idle past httpx's expiry, must still carry the next request.
    """
    client_expiry = httpx.Limits().keepalive_expiry
    assert client_expiry is not None
    assert client_expiry < runtime.API_KEEP_ALIVE_SECONDS
    settings = in_process
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    async with api_in_process(settings) as (_, serving):

        async def listening() -> bool:
            assert not serving.done(), serving
            try:
                _, probe = await asyncio.open_connection("127.0.0.1", settings.port)
            except OSError:
                return False
            probe.close()
            return True

        await wait_until(listening, "the in-process API listening", 60)
        reader, writer = await asyncio.open_connection("127.0.0.1", settings.port)
        try:
            writer.write(request)
            assert (await _read_response(reader)).startswith(b"HTTP/1.1 ")
            # Idle for longer than a client's pool would keep it: still open on our side.
            await asyncio.sleep(client_expiry + 1)
            writer.write(request)
            again = await _read_response(reader)
        finally:
            writer.close()
        assert again.startswith(b"HTTP/1.1 "), "the server closed the idle connection"
