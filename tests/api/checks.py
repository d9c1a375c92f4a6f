"""What every refused request must leave: a problem document, and nothing changed anywhere."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from sqlalchemy import func, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from superscript.db.metadata import metadata
from superscript.ledger import Ledger, LedgerError, schema

PROBLEM = "application/problem+json"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem document of ``status`` with the contract's ``code``; its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail", "code"):
        assert member in body, body
    assert isinstance(body["type"], str) and body["type"]
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    assert body["status"] == response.status_code
    assert body["code"] == code, body
    return body


@dataclass(frozen=True)
class Snapshot:
    rows: dict[str, int]
    balances: int


async def snapshot(ledger: Ledger) -> Snapshot:
    """The row count of every ledger table and the balance total: any change shows here."""
    async with ledger.engine.connect() as conn:
        rows = {
            table.name: int(await conn.scalar(select(func.count()).select_from(table)) or 0)
            for table in metadata.sorted_tables
        }
        balances = await conn.scalar(select(func.coalesce(func.sum(schema.accounts.c.balance), 0)))
    return Snapshot(rows, int(balances or 0))


async def account_exists(ledger: Ledger, account_id: str) -> bool:
    try:
        await ledger.get_account(account_id)
    except LedgerError as exc:
        assert exc.code == "account_not_found"
        return False
    return True


async def workflow_exists(client: Client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        assert exc.status == RPCStatusCode.NOT_FOUND, exc
        return False
    return True
