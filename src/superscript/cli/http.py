"""The one client of the HTTP API that the client commands (``batch``, ``demo``) use.

It finds the API where the settings put it, sends the settings' token, and turns every
answer that is not the expected one into an :class:`ApiError` that reads ``code: detail``
(a problem document's) or ``HTTP status: text`` (anything else).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import httpx

from superscript.settings import Settings

REQUEST_TIMEOUT_SECONDS: Final = 30.0
SUBMIT_TIMEOUT_SECONDS: Final = 600.0
"""A million items is a large body to store: the POST may take a while."""
HEALTH_TIMEOUT_SECONDS: Final = 10.0
UPLOAD_CHUNK_BYTES: Final = 256 * 1024


def default_api_url(settings: Settings) -> str:
    """The API of these settings, as a client reaches it (a wildcard bind means loopback)."""
    host = settings.host
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.port}"


def auth_headers(settings: Settings) -> dict[str, str]:
    if settings.api_token is None:
        return {}
    return {"Authorization": f"Bearer {settings.api_token.get_secret_value()}"}


class ApiError(Exception):
    """The API answered with a problem, something else that is not the answer, or not at all.

    ``code`` is the problem's (None when the answer was no problem document, or there was
    no answer); ``status`` is None when there was no answer.
    """

    def __init__(
        self, message: str, code: str | None = None, status: int | None = None, request: str = ""
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.request = request

    def in_context(self) -> str:
        """``POST /accounts answered code: detail``: the error with the request it was for."""
        if not self.request:
            return str(self)
        if self.status is None:
            return f"{self.request}: {self}"
        return f"{self.request} answered {self}"


def _json(response: httpx.Response) -> Any:
    """The decoded JSON of an answer; None when it is not JSON."""
    try:
        return response.json()
    except ValueError:
        return None


def problem(response: httpx.Response, request: str = "") -> ApiError:
    """``code: detail`` of a problem document; the status and text of anything else."""
    body = _json(response)
    status = response.status_code
    if isinstance(body, dict) and isinstance(body.get("code"), str):
        return ApiError(f"{body['code']}: {body.get('detail', '')}", body["code"], status, request)
    text = response.text.strip().replace("\n", " ")[:300]
    return ApiError(f"HTTP {status}: {text or response.reason_phrase}", None, status, request)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The JSON object of an answer; empty when it is not one."""
    body = _json(response)
    return body if isinstance(body, dict) else {}


class ApiClient:
    """The API at one base URL, over one connection pool, with the settings' token."""

    def __init__(
        self,
        settings: Settings,
        api: str | None = None,
        *,
        timeout: float = REQUEST_TIMEOUT_SECONDS,
        limits: httpx.Limits | None = None,
    ) -> None:
        self.base = (api or default_api_url(settings)).rstrip("/")
        self.http = httpx.AsyncClient(
            base_url=self.base,
            headers=auth_headers(settings),
            timeout=timeout,
            limits=limits or httpx.Limits(),
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, whatever its status; :class:`ApiError` when there is none."""
        try:
            return await self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(
                f"cannot reach the API at {self.base}: {exc}", request=f"{method} {path}"
            ) from exc

    async def expect(self, method: str, path: str, status: int, **kwargs: Any) -> dict[str, Any]:
        """The JSON object of an answer with ``status``; :class:`ApiError` for any other."""
        response = await self.request(method, path, **kwargs)
        if response.status_code != status:
            raise problem(response, f"{method} {path}")
        body = _json(response)
        if not isinstance(body, dict):
            raise ApiError(
                f"HTTP {response.status_code}: unexpected body {response.text[:300]}",
                status=response.status_code,
                request=f"{method} {path}",
            )
        return body

    async def health(self) -> httpx.Response | None:
        """The /healthz answer, or None when nothing listens there."""
        try:
            return await self.http.get("/healthz", timeout=HEALTH_TIMEOUT_SECONDS)
        except httpx.TransportError:
            return None

    # --- batches ------------------------------------------------------------------------------

    async def submit_batch(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self.expect("POST", "/batches", 202, json=body, timeout=SUBMIT_TIMEOUT_SECONDS)

    async def submit_csv_batch(
        self, file: Path, batch_id: str, kind: str, script: str | None
    ) -> dict[str, Any]:
        """``POST /batches`` with ``file`` as a streamed ``text/csv`` body: the API reads it
        as it arrives, and neither side holds it whole for the request."""
        params = {"batch_id": batch_id, "kind": kind}
        if script is not None:
            params["script"] = script
        return await self.expect(
            "POST",
            "/batches",
            202,
            params=params,
            content=_file_chunks(file),
            headers={"Content-Type": "text/csv"},
            timeout=SUBMIT_TIMEOUT_SECONDS,
        )

    async def batch(self, batch_id: str) -> dict[str, Any]:
        return await self.expect("GET", f"/batches/{batch_id}", 200)

    async def failed_items(self, batch_id: str, limit: int) -> list[dict[str, Any]]:
        page = await self.expect(
            "GET", f"/batches/{batch_id}/items", 200, params={"status": "failed", "limit": limit}
        )
        return [item for item in page.get("items", []) if isinstance(item, dict)]


async def _file_chunks(file: Path) -> AsyncIterator[bytes]:
    """The file's bytes, a chunk at a time (a local file: each read is short)."""
    with file.open("rb") as stream:
        while chunk := stream.read(UPLOAD_CHUNK_BYTES):
            yield chunk
