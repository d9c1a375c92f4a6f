"""Request and response bodies, validated exactly as the contract says (strictly)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

from fastapi import Path
from fastapi.params import Path as PathParam
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictInt,
    StringConstraints,
)

from superscript.api.paging import PageLimit
from superscript.batches.models import ScriptItem
from superscript.contract import (
    ARG_PATTERN,
    ARG_RULE,
    BATCH_BODY_LIMIT,
    DEFAULT_BODY_LIMIT,
    ID_MAX_LENGTH,
    ID_PATTERN,
    MAX_AMOUNT,
    MAX_ARG_CHARS,
    MAX_ARGS,
    MAX_ARGS_TOTAL_CHARS,
    MAX_BALANCE,
    MAX_BATCH_ITEMS,
    MIN_AMOUNT,
    MIN_BALANCE,
    PAGE_LIMIT_DEFAULT,
    arg_problem,
    args_problem,
)
from superscript.ledger import FeeOrder

# Re-exported: older code and tests import these from here.
__all__ = ["ID_PATTERN", "MAX_AMOUNT", "MAX_BATCH_ITEMS", "PAGE_LIMIT_DEFAULT", "PageLimit"]

Identifier = Annotated[
    str, StringConstraints(strict=True, pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH)
]
# JSON Schema counts 1.0 as an integer; the contract refuses it (money is never a float).
WHOLE_NUMBER = "written as a whole number: no fraction, exponent or quotes (1.0 is refused)"
Amount = Annotated[
    StrictInt,
    Field(ge=MIN_AMOUNT, le=MAX_AMOUNT, description=f"minor units (cents), {WHOLE_NUMBER}"),
]
Balance = Annotated[
    StrictInt,
    Field(ge=MIN_BALANCE, le=MAX_BALANCE, description=f"minor units (cents), {WHOLE_NUMBER}"),
]


def _id_path() -> PathParam:
    # One Path() per parameter: FastAPI keeps the info object a parameter is declared with.
    param: PathParam = Path(pattern=ID_PATTERN, min_length=1, max_length=ID_MAX_LENGTH)
    return param


AccountIdPath = Annotated[str, _id_path()]
OrderIdPath = Annotated[str, _id_path()]
BatchIdPath = Annotated[str, _id_path()]
ScriptNamePath = Annotated[str, _id_path()]


def _script_arg(arg: str) -> str:
    problem = arg_problem(arg)
    if problem is not None:
        raise ValueError(f"an argument {problem}")
    return arg


def _script_args(args: list[str]) -> list[str]:
    problem = args_problem(args)
    if problem is not None:
        raise ValueError(problem)
    return args


ScriptArg = Annotated[
    str,
    StringConstraints(strict=True, max_length=MAX_ARG_CHARS),
    # The pattern is stated for clients; the validator enforces it with a clearer message.
    Field(json_schema_extra={"pattern": ARG_PATTERN}, description=ARG_RULE),
    AfterValidator(_script_arg),
]
ScriptArgs = Annotated[
    list[ScriptArg],
    Field(
        max_length=MAX_ARGS,
        description=f"argv of the script; at most {MAX_ARGS_TOTAL_CHARS} characters in all",
    ),
    AfterValidator(_script_args),
]
"""One run's arguments: the same rules for ``POST /scripts/{name}/runs`` and batch items."""


class Strict(BaseModel):
    """Unknown fields are refused: a typo in a payment request must not pass silently."""

    model_config = ConfigDict(extra="forbid")


class CreateAccount(Strict):
    account_id: Identifier
    balance: Balance


class AccountBody(BaseModel):
    account_id: str
    balance: int


class FeeRequest(Strict):
    account_id: Identifier
    amount: Amount


class NaiveFeeBody(BaseModel):
    order_id: str
    account_id: str
    amount: int
    balance: int


class FeeBody(BaseModel):
    order_id: str
    account_id: str
    amount: int
    balance_after: int
    status: Literal["charged"]
    workflow_id: str
    run_id: str | None


class PendingBody(BaseModel):
    order_id: str
    status: Literal["pending"]
    workflow_id: str


class HealthBody(BaseModel):
    status: str
    temporal: str
    database: str


class ProblemBody(BaseModel):
    """RFC 9457 problem details with the contract's machine-readable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str
    code: str


PROBLEM_SCHEMA: dict[str, object] = ProblemBody.model_json_schema()


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the problem documents a route may answer with.

    Problems are sent as ``application/problem+json`` only, so that is the one media type
    declared, with the problem schema (inline: FastAPI would also list a ``model`` under
    ``application/json``, which the app never answers with).
    """
    responses: dict[int | str, dict[str, object]] = {}
    for status in statuses:
        response: dict[str, object] = {
            "description": HTTPStatus(status).phrase,
            "content": {"application/problem+json": {"schema": PROBLEM_SCHEMA}},
        }
        if status == 413:
            response["description"] = (
                f"the body is larger than {DEFAULT_BODY_LIMIT:,} bytes "
                f"({BATCH_BODY_LIMIT:,} for POST /batches)"
            )
        if status == 401:
            response["description"] = "SUPERSCRIPT_API_TOKEN is set and no valid token was sent"
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}
            }
        responses[status] = response
    return responses


class FeeItemIn(Strict, FeeOrder):
    """A ``FeeOrder`` as validated from the request: the store takes it as it is."""

    order_id: Identifier
    account_id: Identifier
    amount: Amount


class ScriptItemIn(Strict, ScriptItem):
    """A ``ScriptItem`` as validated from the request: the store takes it as it is."""

    order_id: Identifier
    args: ScriptArgs = []


class FeeBatchRequest(Strict):
    batch_id: Identifier
    kind: Literal["fee"]
    items: Annotated[list[FeeItemIn], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


class ScriptBatchRequest(Strict):
    batch_id: Identifier
    kind: Literal["script"]
    script: Identifier
    items: Annotated[list[ScriptItemIn], Field(min_length=1, max_length=MAX_BATCH_ITEMS)]


BatchRequest = Annotated[FeeBatchRequest | ScriptBatchRequest, Field(discriminator="kind")]


class FeeCsvBatchQuery(Strict):
    """``?batch_id=&kind=fee`` of a CSV batch: the JSON body's fields but its items."""

    batch_id: Identifier
    kind: Literal["fee"]


class ScriptCsvBatchQuery(Strict):
    batch_id: Identifier
    kind: Literal["script"]
    script: Identifier


class CsvBatchParams(BaseModel):
    """The CSV query as a JSON request may carry it too: ignored, but never malformed."""

    batch_id: Identifier | None = None
    kind: Literal["fee", "script"] | None = None
    script: Identifier | None = None


CsvBatchQuery = Annotated[FeeCsvBatchQuery | ScriptCsvBatchQuery, Field(discriminator="kind")]
"""Checked like the JSON body, so an unknown kind is refused with the JSON route's words."""


class BatchAccepted(BaseModel):
    batch_id: str
    kind: Literal["fee", "script"]
    status: Literal["running", "completed"]
    total: int
    workflow_id: str


class BatchStatusBody(BaseModel):
    batch_id: str
    kind: Literal["fee", "script"]
    status: Literal["running", "completed"]
    total: int
    succeeded: int
    replayed: int
    failed: int
    pending: int
    created_at: AwareDatetime | None = None
    completed_at: AwareDatetime | None = None


class BatchItemsPage(BaseModel):
    batch_id: str
    items: list[dict[str, object]]
    next_after: int | None
