"""Accounts: open one with a balance, read its balance."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from superscript.api.problems import Problem
from superscript.api.schemas import AccountBody, AccountIdPath, CreateAccount, problem_responses
from superscript.api.state import Services, services
from superscript.ledger import LedgerError

router = APIRouter(tags=["accounts"])


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountBody,
    responses=problem_responses(401, 409, 413, 422),
)
async def create_account(
    body: CreateAccount, svc: Annotated[Services, Depends(services)]
) -> AccountBody:
    try:
        account = await svc.ledger.create_account(body.account_id, body.balance)
    except LedgerError as exc:
        raise Problem.from_ledger(exc) from exc
    return AccountBody(account_id=account.account_id, balance=account.balance)


@router.get(
    "/accounts/{account_id}", response_model=AccountBody, responses=problem_responses(404, 422)
)
async def get_account(
    account_id: AccountIdPath, svc: Annotated[Services, Depends(services)]
) -> AccountBody:
    try:
        account = await svc.ledger.get_account(account_id)
    except LedgerError as exc:
        raise Problem.from_ledger(exc) from exc
    return AccountBody(account_id=account.account_id, balance=account.balance)
