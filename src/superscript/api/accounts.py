"""Accounts: open one with a balance, read its balance."""

from __future__ import annotations

from fastapi import APIRouter

from superscript.api.deps import LedgerDep
from superscript.api.problems import Problem
from superscript.api.schemas import AccountBody, AccountIdPath, CreateAccount, problem_responses
from superscript.ledger import LedgerError

router = APIRouter(tags=["accounts"])


@router.post(
    "/accounts",
    status_code=201,
    response_model=AccountBody,
    responses=problem_responses(401, 409, 413, 422),
)
async def create_account(body: CreateAccount, ledger: LedgerDep) -> AccountBody:
    try:
        account = await ledger.create_account(body.account_id, body.balance)
    except LedgerError as exc:
        raise Problem.from_ledger(exc) from exc
    return AccountBody(account_id=account.account_id, balance=account.balance)


@router.get(
    "/accounts/{account_id}", response_model=AccountBody, responses=problem_responses(404, 422)
)
async def get_account(account_id: AccountIdPath, ledger: LedgerDep) -> AccountBody:
    try:
        account = await ledger.get_account(account_id)
    except LedgerError as exc:
        raise Problem.from_ledger(exc) from exc
    return AccountBody(account_id=account.account_id, balance=account.balance)
