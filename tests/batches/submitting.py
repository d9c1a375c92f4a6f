"""A batch as a test submits it over the API, and reads it once its workflow has ended."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from temporalio.client import Client

from superscript.batches.models import batch_workflow_id
from tests.conftest import Api


async def submit(api: Api, body: dict[str, Any]) -> dict[str, Any]:
    """``POST /batches``, which must accept it (202): the accepted batch."""
    response = await api.http.post("/batches", json=body)
    assert response.status_code == 202, response.text
    accepted: dict[str, Any] = response.json()
    return accepted


async def finish(api: Api, client: Client, batch_id: str) -> dict[str, Any]:
    """Wait for the batch workflow itself to end, then read the batch as users do.

    Its times are checked here (made, then completed, in that order); the body returned
    is the rest of it, which tests compare whole.
    """
    await client.get_workflow_handle(batch_workflow_id(batch_id)).result()
    response = await api.http.get(f"/batches/{batch_id}")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    created, completed = body.pop("created_at"), body.pop("completed_at")
    if body["status"] == "completed":
        assert datetime.fromisoformat(created) <= datetime.fromisoformat(completed), body
    return body
