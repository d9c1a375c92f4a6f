"""Decided fee orders: the list, with its filters, and one order's whole history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from superscript.api.deps import ClientDep, LedgerDep
from superscript.api.history import order_history
from superscript.api.list_bodies import HistoryBody, OrderBody, OrdersPage
from superscript.api.paging import PAGE_LIMIT_DEFAULT, IdAfter, IdFilter, PageLimit
from superscript.api.problems import Problem
from superscript.api.schemas import OrderIdPath, problem_responses
from superscript.batches.models import batch_workflow_id
from superscript.ledger.listing import orders_page
from superscript.ledger.models import FeeStatus

router = APIRouter(tags=["orders"])


@router.get("/orders", response_model=OrdersPage, responses=problem_responses(422))
async def list_orders(
    ledger: LedgerDep,
    account_id: IdFilter = None,
    status: Annotated[FeeStatus | None, Query()] = None,
    batch_id: Annotated[IdFilter, Query(description="the orders this batch decided")] = None,
    limit: PageLimit = PAGE_LIMIT_DEFAULT,
    after: IdAfter = None,
) -> OrdersPage:
    """Decided fee orders, newest first; ``via`` says who decided each.

    ``?batch_id=`` lists the orders that batch decided (``via`` = ``batch:{batch_id}``);
    the items it found decided already are its ``replayed`` items.
    """
    decided_by = None if batch_id is None else batch_workflow_id(batch_id)
    page = await orders_page(
        ledger, after, limit, account_id=account_id, status=status, decided_by=decided_by
    )
    return OrdersPage(
        items=[OrderBody.of(outcome) for outcome in page.items], next_after=page.next_after
    )


@router.get(
    "/orders/{order_id}/history",
    response_model=HistoryBody,
    responses=problem_responses(404, 422),
)
async def get_order_history(
    order_id: OrderIdPath, ledger: LedgerDep, client: ClientDep
) -> HistoryBody:
    """Everything known about one order, oldest first: its decision and who made it, each
    batch that carried it and what it reported, its journal entries, its workflows."""
    history = await order_history(ledger, client, order_id)
    if history is None:
        raise Problem(
            404, "order_not_found", f"nothing is known of order {order_id!r}", order_id=order_id
        )
    return history
