"""``POST /batches`` with a JSON body: read, checked and staged as it arrives.

FastAPI would read and parse the whole body before the route runs (1.1 GiB for a million
items). :func:`submit_json` reads it as a stream instead (``batches.json_intake``), keeping
a copy of the raw bytes in a temporary file (on disk past a few MiB). When the reader gives
up (malformed JSON, an invalid item, an envelope that does not validate, an unusual
layout), the same bytes go to FastAPI's own route: every 422 is the one it always gave.
"""

from __future__ import annotations

import tempfile
from collections.abc import Awaitable, Callable
from typing import IO, Any, Final

from fastapi import Request, Response
from pydantic import TypeAdapter, ValidationError
from starlette.types import Message

from superscript.api.batch_accept import accept_batch
from superscript.api.deps import get_services
from superscript.api.schemas import BatchRequest, ScriptBatchRequest, ScriptItemIn
from superscript.api.scripts import script_spec
from superscript.batches.json_intake import GiveUp, JsonIntake, fee_item, script_item

SPOOLED_IN_MEMORY_BYTES: Final = 4 * 1024 * 1024
"""The raw body and the staged items past this go to temporary files: memory stays flat."""
_REQUEST: Final = TypeAdapter[Any](BatchRequest)
_CHECKS: Final = {
    "fee": fee_item,
    "script": script_item(TypeAdapter(ScriptItemIn).validate_python),
}

WholeBody = Callable[[Request], Awaitable[Response]]


async def submit_json(request: Request, whole_body: WholeBody) -> Response:
    """Stream the body in; answer with ``whole_body`` on the same bytes when it gives up."""
    svc = await get_services(request)
    spooled = tempfile.SpooledTemporaryFile
    with (
        spooled(max_size=SPOOLED_IN_MEMORY_BYTES) as raw,
        spooled(max_size=SPOOLED_IN_MEMORY_BYTES) as staging,
    ):
        intake: JsonIntake | None = JsonIntake(_CHECKS, staging)
        async for chunk in request.stream():
            raw.write(chunk)
            intake = _fed(intake, chunk)
        intake = _fed(intake, b"", final=True)
        body = None if intake is None else _validated(intake)
        if intake is None or body is None:
            return await whole_body(_replayed(request, raw))
        if not isinstance(body, ScriptBatchRequest):
            return await accept_batch(svc, body.batch_id, body.kind, None, intake.finish())
        script_spec(svc.registry, body.script)  # a 404 before anything is stored
        return await accept_batch(
            svc, body.batch_id, body.kind, body.script, intake.finish(), body.orchestrator
        )


def _fed(intake: JsonIntake | None, data: bytes, *, final: bool = False) -> JsonIntake | None:
    """The intake after ``data``, or None once it gave up (the rest is only kept)."""
    if intake is None:
        return None
    try:
        intake.feed(data, final=final)
    except GiveUp:
        return None
    return intake


def _validated(intake: JsonIntake) -> Any:
    """The envelope as the route's model, with its first item (the others were checked one
    by one); None when it does not validate, so that FastAPI names every error."""
    try:
        return _REQUEST.validate_python({**intake.envelope, "items": [intake.first_item]})
    except ValidationError:
        return None


def _replayed(request: Request, raw: IO[bytes]) -> Request:
    """``request`` again, its body the bytes already read (for FastAPI's own route)."""
    raw.seek(0)
    body = raw.read()
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()

    return Request(request.scope, receive)
