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
    expected = f"Bearer {settings.api_token.get_secret_value()}".encode()

    @app.middleware("http")
    async def require_token(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if request.method not in SAFE_METHODS:
            given = request.headers.get("authorization", "").encode()
            # Constant time, so the token can't be guessed byte by byte from timings.
            if not hmac.compare_digest(given, expected):
                return problem_response(
                    401,
                    "unauthorized",
                    "this route needs 'Authorization: Bearer <SUPERSCRIPT_API_TOKEN>'",
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)
