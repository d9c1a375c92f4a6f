"""Requests cut short at shutdown get a 503 problem, not uvicorn's bare 500.

When the graceful-shutdown period of the API ends, uvicorn cancels the requests still
running and answers each with a plain-text ``500 Internal Server Error``. Nothing went
wrong with them: the service stopped. What they asked for is either done or safe to ask
for again (every effect is idempotent per order), so they are told exactly that, as the
contract's problem document: ``503 shutting_down`` with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from superscript.api.problems import problem_response

RETRY_AFTER_SECONDS: Final = 5
CUT_DETAIL: Final = (
    "the service shut down before this request was answered; whatever it asked for is "
    "done or not yet, never twice: send the same request again"
)


class AnswerWhenCutMiddleware:
    """Pure ASGI, outside every other middleware of the app: a request cancelled before
    its response started is answered ``503 shutting_down`` instead of ``500``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except asyncio.CancelledError:
            if started:
                raise  # half an answer can't be taken back: the server closes the connection
            # The server cancelled this request's task (its shutdown grace period is over)
            # and does not wait for it: answering is the last thing the task does.
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
            response = problem_response(
                503,
                "shutting_down",
                CUT_DETAIL,
                headers={"Retry-After": str(RETRY_AFTER_SECONDS), "Connection": "close"},
            )
            await response(scope, receive, send)
