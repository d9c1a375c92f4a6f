"""RFC 9457 problem details, each with the machine-readable ``code`` of the contract."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from temporalio.client import WorkflowExecutionStatus

from superscript.ledger.errors import LedgerError

PROBLEM_JSON = "application/problem+json"

LEDGER_STATUS: dict[str, int] = {
    "account_exists": 409,
    "account_not_found": 404,
    "insufficient_funds": 402,
    "idempotency_key_reused": 422,
}


class Problem(Exception):
    """Raise anywhere in a route to answer with a problem document."""

    def __init__(self, status: int, code: str, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.status = status
        self.code = code
        self.detail = detail
        self.extra = extra

    @classmethod
    def from_ledger(cls, error: LedgerError, **extra: Any) -> Problem:
        return cls(LEDGER_STATUS.get(error.code, 400), error.code, error.detail, **extra)


def closed_undecided(
    workflow_id: str,
    status: WorkflowExecutionStatus | None,
    what: str,
    not_in_ledger: str,
    **extra: Any,
) -> Problem:
    """A closed workflow whose decision the ledger does not hold: 503 either way.

    Completed, it answered for another ledger (``not_in_ledger`` says so); otherwise it
    closed (failed, terminated, timed out...) before deciding ``what``.
    """
    if status == WorkflowExecutionStatus.COMPLETED:
        return Problem(503, "workflow_result_not_in_ledger", not_in_ledger, **extra)
    name = status.name if status else "UNKNOWN"
    detail = f"{workflow_id} closed ({name}) without deciding the {what}"
    return Problem(503, "workflow_failed", detail, **extra)


def problem_body(status: int, code: str, detail: str, **extra: Any) -> dict[str, Any]:
    return {
        "type": f"https://superscript.dev/problems/{code.replace('_', '-')}",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "code": code,
        **extra,
    }


def problem_response(
    status: int,
    code: str,
    detail: str,
    headers: Mapping[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(
        problem_body(status, code, detail, **extra),
        status_code=status,
        media_type=PROBLEM_JSON,
        headers=headers,
    )


HTTP_CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
}


UNPARSABLE_BODY: dict[str, Any] = {
    "loc": ["body"],
    "msg": "JSON could not be parsed (a number with too many digits, or nesting too deep)",
    "type": "json_invalid",
}


def validation_problem(errors: list[dict[str, Any]]) -> JSONResponse:
    """A 422 ``validation_error`` whose detail names the first failing location."""
    first = errors[0] if errors else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(part) for part in first["loc"])
    return problem_response(422, "validation_error", f"{where}: {first['msg']}", errors=errors)


METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
# Keys the routing of this request wrote into its scope; a fresh match must not see them.
ROUTING_KEYS = frozenset({"fastapi", "route", "endpoint", "path_params"})


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at this request's path.

    Starlette's 405 names only the methods of the first route that matched the path, so
    ``PUT /orders/x/fee`` would say ``Allow: POST`` though ``GET`` is served there too.
    """
    base = {key: value for key, value in request.scope.items() if key not in ROUTING_KEYS}
    return [
        method
        for method in METHODS
        if any(
            route.matches({**base, "method": method})[0] == Match.FULL
            for route in request.app.router.routes
        )
    ]


def install(app: FastAPI) -> None:
    """Every error the app can produce leaves as problem+json with a ``code``."""

    async def on_problem(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Problem)
        return problem_response(exc.status, exc.code, exc.detail, **exc.extra)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = [
            {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
            for err in exc.errors()
        ]
        return validation_problem(errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and isinstance(exc.__cause__, ValueError | RecursionError):
            # FastAPI's "error parsing the body": JSON that Python will not decode, such as
            # an integer of more than 4,300 digits. Like malformed JSON (which FastAPI
            # reports as a validation error), and as the contract says of out-of-bounds
            # numbers, that is a 422 validation_error.
            return validation_problem([UNPARSABLE_BODY])
        code = HTTP_CODES.get(exc.status_code, "http_error")
        detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        headers = exc.headers
        if exc.status_code == 405 and (methods := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": ", ".join(methods)}
        return problem_response(exc.status_code, code, detail, headers=headers)

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
