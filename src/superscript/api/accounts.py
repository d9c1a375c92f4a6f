"""Accounts: open one with a balance, read its balance, list them, read its journal."""

from __future__ import annotations

from fastapi import APIRouter

from superscript.api.deps import LedgerDep
from superscript.api.list_bodies import AccountsPage, EntriesPage, EntryBody
from superscript.api.paging import PAGE_LIMIT_DEFAULT, IdAfter, PageLimit, SeqAfter
from superscript.api.problems import Problem
from superscript.api.schemas import AccountBody, AccountIdPath, CreateAccount, problem_responses
from superscript.ledger import LedgerError
from superscript.ledger.listing import accounts_page, entries_page

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


@router.get("/accounts", response_model=AccountsPage, responses=problem_responses(422))
async def list_accounts(
    ledger: LedgerDep, limit: PageLimit = PAGE_LIMIT_DEFAULT, after: IdAfter = None
) -> AccountsPage:
    """Accounts by ``account_id``; page on with ``after=next_after``."""
    page = await accounts_page(ledger, after, limit)
    items = [AccountBody(account_id=a.account_id, balance=a.balance) for a in page.items]
    return AccountsPage(items=items, next_after=page.next_after)


@router.get(
    "/accounts/{account_id}/entries",
    response_model=EntriesPage,
    responses=problem_responses(404, 422),
)
async def list_entries(
    account_id: AccountIdPath,
    ledger: LedgerDep,
    limit: PageLimit = PAGE_LIMIT_DEFAULT,
    after: SeqAfter = None,
) -> EntriesPage:
    """The account's journal, oldest first; ``amount`` is signed (a charge is negative)."""
    try:
        await ledger.get_account(account_id)
    except LedgerError as exc:
        raise Problem.from_ledger(exc) from exc
    page = await entries_page(ledger, account_id, after, limit)
    items = [EntryBody.model_validate(entry.model_dump()) for entry in page.items]
    return EntriesPage(items=items, next_after=page.next_after)
