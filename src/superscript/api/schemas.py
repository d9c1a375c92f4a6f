"""Request and response bodies, validated exactly as the contract says (strictly)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import Path
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

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


def problem_responses(*statuses: int) -> dict[int | str, dict[str, object]]:
    """OpenAPI entries for the problem documents a route may answer with."""
    return {
        status: {"model": ProblemBody, "content": {"application/problem+json": {}}}
        for status in statuses
    }
