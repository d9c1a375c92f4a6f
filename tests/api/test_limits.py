"""Body limits: a 413 problem before an oversized body is read, and nothing changed."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from superscript.api.limits import BATCH_BODY_LIMIT, DEFAULT_BODY_LIMIT, body_limit
from tests.conftest import Api, unique

JSON = {"content-type": "application/json"}


def test_batches_get_room_for_a_million_items() -> None:
    assert body_limit("POST", "/batches") == BATCH_BODY_LIMIT
    assert body_limit("POST", "/accounts") == DEFAULT_BODY_LIMIT
    # A million fee items with 40-character identifiers fit.
    ids = {"order_id": "o" * 40, "account_id": "a" * 40, "amount": 10**6}
    item = json.dumps(ids, separators=(",", ":")) + ","
    assert len(item) * 1_000_000 < BATCH_BODY_LIMIT


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_declared_oversized_body_is_refused(api: Api) -> None:
    account_id = unique("acc")
    padding = b" " * (DEFAULT_BODY_LIMIT + 1)
    body = b'{"account_id": "%s", "balance": 5}' % account_id.encode() + padding

    response = await api.http.post("/accounts", content=body, headers=JSON)

    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == "payload_too_large"
    missing = await api.http.get(f"/accounts/{account_id}")
    assert missing.status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_streamed_oversized_body_is_refused(api: Api) -> None:
    account_id = unique("acc")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"account_id": "%s", "balance": 5' % account_id.encode()
        for _ in range(3):
            yield b" " * (DEFAULT_BODY_LIMIT // 2)
        yield b"}"

    response = await api.http.post("/accounts", content=chunks(), headers=JSON)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert (await api.http.get(f"/accounts/{account_id}")).status_code == 404


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_streamed_body_within_the_limit_is_served(api: Api) -> None:
    account_id = unique("acc")

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"account_id": "%s",' % account_id.encode()
        yield b' "balance": 5}'

    response = await api.http.post("/accounts", content=chunks(), headers=JSON)

    assert response.status_code == 201
    assert response.json() == {"account_id": account_id, "balance": 5}
