"""The demo's HTTP: the API client, plus what a demonstration asks of it beyond one call
(a retry storm, a pending answer followed up, a balance)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Final

import httpx

from superscript.cli.http import ApiClient, json_object

REQUEST_TIMEOUT_SECONDS: Final = 90.0
"""Above the API's own 30 s wait for an outcome."""
SETTLE_SECONDS: Final = 120.0
"""How long a 202 pending answer is followed up before the demo gives up on it."""
POLL_SECONDS: Final = 0.5
LIMITS: Final = httpx.Limits(max_connections=50, max_keepalive_connections=20)


class DemoError(Exception):
    """The API did not answer as the contract says: this demonstration cannot go on."""


@dataclass(frozen=True)
class Answers:
    """The answers to one request sent several times at once."""

    responses: list[httpx.Response]

    @property
    def statuses(self) -> Counter[int]:
        return Counter(response.status_code for response in self.responses)

    @property
    def bodies(self) -> set[str]:
        return {response.text for response in self.responses}

    @property
    def run_ids(self) -> set[Any]:
        return {json_object(response).get("run_id") for response in self.responses}

    @property
    def first(self) -> dict[str, Any]:
        return json_object(self.responses[0])

    @property
    def all_200(self) -> bool:
        return self.statuses == {200: len(self.responses)}


class DemoApi(ApiClient):
    """The API as the demo uses it."""

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
        self, count: int, method: str, path: str, **kwargs: Any
    ) -> list[httpx.Response]:
        """``count`` identical calls released at the same moment, as a retry storm sends them."""
        barrier = asyncio.Barrier(count)

        async def one() -> httpx.Response:
            await barrier.wait()
            return await self.request(method, path, **kwargs)

        return list(await asyncio.gather(*(one() for _ in range(count))))

    async def storm(self, count: int, path: str, body: dict[str, Any], settle: str) -> Answers:
        """``count`` identical POSTs at once, each followed up at ``settle`` until decided."""
        sent = await self.concurrently(count, "POST", path, json=body)
        return Answers([await self.settle(response, settle) for response in sent])

    async def balance(self, account_id: str) -> int:
        body = await self.expect("GET", f"/accounts/{account_id}", 200)
        return int(body["balance"])
