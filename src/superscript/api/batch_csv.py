"""``POST /batches`` with a CSV body: read, checked and staged as it arrives.

FastAPI reads a route's whole body before the route runs, so the route of ``POST
/batches`` (:class:`CsvOrJsonRoute`) hands a ``text/csv`` request to :func:`submit_csv`
before that: the body is then read as a stream (``request.stream()``), each row checked
with the CLI's rules (:mod:`superscript.batches.csv_rows`), and the API's memory does not
grow with the batch. The query names the batch (``?batch_id=&kind=``, ``&script=``); it is
checked like the JSON body, so an unknown kind gets the JSON route's answer.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Coroutine
from typing import Any, Final

from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError

from superscript.api.batch_accept import accept_batch
from superscript.api.batch_json import submit_json
from superscript.api.content_type import media_type
from superscript.api.deps import get_services
from superscript.api.problems import Problem
from superscript.api.schemas import CsvBatchParams, CsvBatchQuery, ScriptCsvBatchQuery
from superscript.api.scripts import script_spec
from superscript.batches.csv_intake import take_csv
from superscript.batches.csv_rows import CsvError, rows_for
from superscript.batches.models import DEFAULT_ORCHESTRATOR
from superscript.contract import ID_MAX_LENGTH, ID_PATTERN

CSV: Final = b"text/csv"
API_SCRIPT_OPTION: Final = "kind=script&script={name}"
"""How a request asks for a script batch, as header refusals name it."""
STAGED_IN_MEMORY_BYTES: Final = 4 * 1024 * 1024
"""A staged batch past this goes to a temporary file: memory stays flat."""
_QUERY: Final = TypeAdapter[Any](CsvBatchQuery)
_PARAMS: Final = TypeAdapter(CsvBatchParams)


def _query(request: Request, adapter: TypeAdapter[Any] = _QUERY) -> Any:
    """The checked ``?batch_id=&kind=&script=``; a 422 like the JSON body's otherwise."""
    try:
        return adapter.validate_python(dict(request.query_params))
    except ValidationError as exc:
        errors = [{**error, "loc": ("query", *error["loc"])} for error in exc.errors()]
        raise RequestValidationError(errors) from exc


def csv_problem(error: CsvError) -> Problem:
    """A 422 that names every bad line (the first 100), one error each."""
    errors = [
        {"loc": ["body", "line", bad.line] if bad.line else ["body"], "msg": bad.reason}
        for bad in error.problems
    ]
    return Problem(422, "validation_error", str(error), errors=errors)


async def submit_csv(request: Request) -> Response:
    """``POST /batches`` with a ``text/csv`` body: see the module's docstring."""
    svc = await get_services(request)
    query = _query(request)
    script = query.script if isinstance(query, ScriptCsvBatchQuery) else None
    orchestrator = (
        query.orchestrator if isinstance(query, ScriptCsvBatchQuery) else DEFAULT_ORCHESTRATOR
    )
    if script is not None:
        script_spec(svc.registry, script)  # a 404 before the body is read
    rows = rows_for(script, API_SCRIPT_OPTION)
    with tempfile.SpooledTemporaryFile(max_size=STAGED_IN_MEMORY_BYTES) as staging:
        try:
            staged = await take_csv(request.stream(), rows, staging)
        except CsvError as exc:
            raise csv_problem(exc) from exc
        return await accept_batch(svc, query.batch_id, query.kind, script, staged, orchestrator)


class CsvOrJsonRoute(APIRoute):
    """A route whose ``text/csv`` requests go to :func:`submit_csv`, the rest as FastAPI's."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        json_handler = super().get_route_handler()

        async def handler(request: Request) -> Response:
            declared = request.headers.get("content-type")
            if declared is not None and media_type(declared.encode("latin-1")) == CSV:
                return await submit_csv(request)
            # The spec declares the CSV query on the operation: a JSON request ignores it,
            # but a malformed one is refused as the spec says.
            _query(request, _PARAMS)
            return await submit_json(request, json_handler)

        return handler


_ID_SCHEMA: Final = {
    "type": "string",
    "pattern": ID_PATTERN,
    "minLength": 1,
    "maxLength": ID_MAX_LENGTH,
}
CSV_OPENAPI: Final[dict[str, Any]] = {
    "parameters": [
        {
            "name": "batch_id",
            "in": "query",
            "required": False,
            "description": "CSV bodies only (required with one): the batch ID",
            "schema": _ID_SCHEMA,
        },
        {
            "name": "kind",
            "in": "query",
            "required": False,
            "description": "CSV bodies only (required with one): the kind of batch",
            "schema": {"type": "string", "enum": ["fee", "script"]},
        },
        {
            "name": "script",
            "in": "query",
            "required": False,
            "description": "CSV bodies of kind script only (required with one): the script",
            "schema": _ID_SCHEMA,
        },
        {
            "name": "orchestrator",
            "in": "query",
            "required": False,
            "description": (
                "CSV bodies of kind script only: how the batch runs its keys, `chunks` (the "
                "default: many keys per activity) or `children` (the seed's design: one "
                "SinglePaymentCollectionWorkflow child per key); the JSON body's "
                "`orchestrator`"
            ),
            "schema": {"type": "string", "enum": ["chunks", "children"], "default": "chunks"},
        },
    ],
    "requestBody": {
        "content": {
            "text/csv": {
                "schema": {
                    "type": "string",
                    "description": (
                        "UTF-8 CSV, read as it arrives. The header row names the columns: "
                        "order_id,account_id,amount (kind fee) or order_id,ARG... (kind "
                        "script: the row's other cells are the run's args). A bad row is a "
                        "422 validation_error naming every bad line (the first 100), and "
                        "nothing is stored."
                    ),
                },
                "example": "order_id,account_id,amount\no-1,acme,250\no-2,acme,100\n",
            }
        }
    },
}
