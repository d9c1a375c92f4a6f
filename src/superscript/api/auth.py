"""Bearer-token check for every route that changes something."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response

from superscript.api.problems import problem_response
from superscript.settings import Settings

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def install(app: FastAPI, settings: Settings) -> None:
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value().encode()

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in SAFE_METHODS:
            # Starlette decodes header bytes as latin-1: encoding back gives the bytes sent,
            # so a non-ASCII token sent as UTF-8 matches its UTF-8 encoding.
            given = request.headers.get("authorization", "").encode("latin-1")
            scheme, _, credentials = given.partition(b" ")
            # The scheme is case-insensitive (RFC 9110 11.1); the token is compared in
            # constant time, so it can't be guessed byte by byte from timings.
            if not (
                hmac.compare_digest(credentials.strip(b" "), expected)
                and scheme.lower() == b"bearer"
            ):
                return problem_response(
                    401,
                    "unauthorized",
                    "this route needs 'Authorization: Bearer <SUPERSCRIPT_API_TOKEN>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)
