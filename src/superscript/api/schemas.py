"""Request and response bodies, validated exactly as the contract says (strictly)."""

from __future__ import annotations

from http import HTTPStatus
from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from superscript.batches.models import FeeItem, ScriptItem

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
MAX_AMOUNT = 10**15

Identifier = Annotated[
    str, StringConstraints(strict=True, pattern=ID_PATTERN, min_length=1, max_length=128)
]
Amount = Annotated[StrictInt, Field(ge=1, le=MAX_AMOUNT)]
Balance = Annotated[StrictInt, Field(ge=0, le=MAX_AMOUNT)]

AccountIdPath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]
OrderIdPath = Annotated[str, Path(pattern=ID_PATTERN, min_length=1, max_length=128)]


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
        if status == 401:
            response["description"] = "SUPERSCRIPT_API_TOKEN is set and no valid token was sent"
            response["headers"] = {
                "WWW-Authenticate": {"schema": {"type": "string", "enum": ["Bearer"]}}
            }
        responses[status] = response
    return responses


MAX_BATCH_ITEMS = 1_000_000
MAX_ARGS = 256
Arg = Annotated[str, StringConstraints(strict=True, max_length=4096)]


class FeeItemIn(Strict, FeeItem):
    """A ``FeeItem`` as validated from the request: the store takes it as it is."""

    order_id: Identifier
    account_id: Identifier
    amount: Amount


class ScriptItemIn(Strict, ScriptItem):
    """A ``ScriptItem`` as validated from the request: the store takes it as it is."""

    order_id: Identifier
    args: Annotated[list[Arg], Field(max_length=MAX_ARGS)] = []


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


class BatchItemsPage(BaseModel):
    batch_id: str
    items: list[dict[str, object]]
    next_after: int | None
