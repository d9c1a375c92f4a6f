"""``superscript api`` hosting its worker (the default): it serves before Temporal exists,
takes Temporal once it answers, and then starts fee workflows eagerly on its own worker."""

from __future__ import annotations

from pathlib import Path

import httpx
from temporalio.client import Client

from tests.conftest import unique
from tests.processes import Stack, wait_healthy, wait_until
from tests.system.faults import Temporal


async def _health(http: httpx.AsyncClient) -> httpx.Response | None:
    try:
        return await http.get("/healthz")
    except httpx.TransportError:
        return None


async def test_api_serves_before_temporal_then_starts_fees_eagerly(tmp_path: Path) -> None:
    temporal = Temporal(log_dir=tmp_path / "logs", data_dir=tmp_path / "temporal")
    stack = Stack.configure(
        tmp_path / "logs",
        temporal_address=temporal.address,
        database_url=f"sqlite:///{tmp_path / 'ledger.db'}",
        data_dir=tmp_path / "data",
        task_queue=unique("tq-api-worker"),
    )
    api = stack.start_api()
    try:
        async with httpx.AsyncClient(base_url=stack.base_url, timeout=60) as http:
            answered: list[httpx.Response] = []

            async def answers() -> bool:
                found = await _health(http)
                answered.extend([found] if found is not None else [])
                return found is not None

            # Temporal is not started yet: the API serves anyway and says what is missing.
            await wait_until(answers, "the API serving without Temporal", 60, api)
            assert answered[-1].status_code == 503, answered[-1].text
            assert answered[-1].json() == {
                "status": "unavailable",
                "temporal": "unavailable",
                "database": "ok",
            }
            early = await http.post(
                f"/orders/{unique('order')}/fee", json={"account_id": "a", "amount": 1}
            )
            assert early.status_code == 503, early.text
            assert early.json()["code"] == "temporal_unavailable"
            await temporal.start()
            await wait_healthy(stack.base_url, api)

            account_id, order_id = unique("acc"), unique("order")
            opened = await http.post("/accounts", json={"account_id": account_id, "balance": 900})
            assert opened.status_code == 201, opened.text
            charged = await http.post(
                f"/orders/{order_id}/fee", json={"account_id": account_id, "amount": 300}
            )
            assert charged.status_code == 200, charged.text
            assert charged.json()["balance_after"] == 600
        client = await Client.connect(temporal.address)
        history = await client.get_workflow_handle(f"FEE-WF-{order_id}").fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        assert started.eager_execution_accepted, "the API's own worker did not start it eagerly"
    finally:
        stack.kill_all()
        if temporal.service is not None:
            await temporal.stop()
