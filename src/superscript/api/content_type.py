"""A JSON body is read as JSON whatever content type it was sent with (the contract says so).

FastAPI reads a body as JSON only when its content type says ``application/json`` (or
``+json``); without one, or with ``text/plain`` as ``curl -d`` and many HTTP clients send,
the same JSON was a ``422``. This pure ASGI middleware tells FastAPI the body is JSON
before it reads it. ``text/csv`` on ``POST /batches`` is left as it is: that route reads
CSV bodies itself.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from superscript import contract

JSON: Final = b"application/json"
NO_BODY_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})


def media_type(value: bytes) -> bytes:
    """``type/subtype`` of a content-type header, lower-cased, without its parameters."""
    return value.split(b";", 1)[0].strip().lower()


def is_json(value: bytes | None) -> bool:
    """What FastAPI reads as JSON: ``application/json`` and ``application/*+json``."""
    if value is None:
        return False
    main, _, sub = media_type(value).partition(b"/")
    return main == b"application" and (sub == b"json" or sub.endswith(b"+json"))


def keeps_its_type(method: str, path: str, value: bytes | None) -> bool:
    """A CSV batch: the one body that is read as what its content type says."""
    return (
        value is not None
        and media_type(value) == b"text/csv"
        and contract.is_batch_submission(method, path)
    )


class JsonBodyMiddleware:
    """Rewrites a missing or non-JSON content type to ``application/json``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] not in NO_BODY_METHODS:
            headers: list[tuple[bytes, bytes]] = list(scope["headers"])
            declared = next((value for name, value in headers if name == b"content-type"), None)
            if not is_json(declared) and not keeps_its_type(
                scope["method"], scope["path"], declared
            ):
                kept = [(name, value) for name, value in headers if name != b"content-type"]
                scope = {**scope, "headers": [*kept, (b"content-type", JSON)]}
        await self.app(scope, receive, send)
