"""Request body limits: a 413 problem before a huge body is read into memory.

The limit is sized per route: ``POST /batches`` takes up to a million items, every other
route a small JSON object. Declared lengths are checked up front; chunked bodies are
counted as they arrive, so no client can stream past the limit either. A batch (CSV or
JSON) is read by its route as it arrives, so it is not buffered here: its chunks are
counted as the route reads them, and one past the limit raises the 413 in the route (which
stores nothing until the whole body is read and good).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from superscript.api.problems import Problem, problem_response
from superscript.contract import (
    BATCH_BODY_LIMIT,
    DEFAULT_BODY_LIMIT,
    body_limit,
    is_batch_submission,
)

__all__ = ["BATCH_BODY_LIMIT", "DEFAULT_BODY_LIMIT", "BodyLimitMiddleware", "body_limit"]


class BodyLimitMiddleware:
    """Pure ASGI: reads the body up to the limit, then hands the app exactly those chunks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["method"], scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refuse(scope, receive, send, limit)
            return
        if is_batch_submission(scope["method"], scope["path"]):
            await self.app(scope, _counting(receive, limit), send)
            return
        chunks: list[Message] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                chunks.append(message)
                break
            received += len(message.get("body", b""))
            if received > limit:
                await _refuse(scope, receive, send, limit)
                return
            chunks.append(message)
            if not message.get("more_body", False):
                break
        replay = iter(chunks)

        async def replaying_receive() -> Message:
            # After the buffered body, pass on whatever comes next (a disconnect).
            return next(replay, None) or await receive()

        await self.app(scope, replaying_receive, send)


def _counting(receive: Receive, limit: int) -> Receive:
    """``receive`` that raises the 413 once the body read so far is past ``limit``."""
    received = 0

    async def counted() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise Problem(413, "payload_too_large", _too_large(limit))
        return message

    return counted


def _too_large(limit: int) -> str:
    return f"the request body may be at most {limit} bytes"


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    response = problem_response(413, "payload_too_large", _too_large(limit))
    await response(scope, receive, send)
