"""Batch routes: submit up to a million orders at once, then follow their progress."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from superscript.api.batch_accept import accept_batch
from superscript.api.batch_csv import CSV_OPENAPI, CsvOrJsonRoute
from superscript.api.deps import Services, ServicesDep
from superscript.api.list_bodies import BatchesPage, batch_body
from superscript.api.paging import IdAfter
from superscript.api.problems import Problem
from superscript.api.schemas import (
    BatchAccepted,
    BatchIdPath,
    BatchItemsPage,
    BatchRequest,
    BatchStatusBody,
    FeeBatchRequest,
    PageLimit,
    problem_responses,
)
from superscript.api.scripts import script_spec
from superscript.batches.listing import batch_row, batches_page
from superscript.batches.models import Batch, BatchItem
from superscript.batches.store import BatchStore
from superscript.batches.storing import staged_list
from superscript.contract import MAX_BATCH_ITEMS, PAGE_LIMIT_DEFAULT

router = APIRouter(tags=["batches"])
# POST /batches reads a CSV body itself, as it arrives: its route dispatches on the type.
submit_router = APIRouter(tags=["batches"], route_class=CsvOrJsonRoute)


@submit_router.post(
    "/batches",
    status_code=202,
    response_model=BatchAccepted,
    responses=problem_responses(401, 404, 413, 422),
    openapi_extra=CSV_OPENAPI,
)
async def submit_batch(body: BatchRequest, svc: ServicesDep) -> JSONResponse:
    """Store the items, then start ``BATCH-WF-{batch_id}``; the same batch again is a no-op.

    The same batch may be sent as CSV (``text/csv``, ``?batch_id=&kind=`` and ``&script=``
    for scripts; the header row names the columns): it is read as it arrives.
    """
    # The request's items are the store's FeeOrder/ScriptItem already: no copy per item.
    items: list[BatchItem]
    script: str | None = None
    if isinstance(body, FeeBatchRequest):
        items = list(body.items)
    else:
        script = body.script
        script_spec(svc.registry, script)  # a 404 before anything is stored
        items = list(body.items)
    staged = staged_list(body.kind, script, items)
    return await accept_batch(svc, body.batch_id, body.kind, script, staged)


router.include_router(submit_router)


async def _batch(svc: Services, batch_id: str) -> Batch:
    batch = await BatchStore(svc.ledger).get(batch_id)
    if batch is None:
        raise Problem(404, "batch_not_found", f"no batch {batch_id!r}", batch_id=batch_id)
    return batch


@router.get("/batches", response_model=BatchesPage, responses=problem_responses(422))
async def list_batches(
    svc: ServicesDep,
    # Every status and kind of the contract (cancelling, cancelled, refund: with cancel and
    # refunds), so a filter by one that has no batch yet is an empty page, not a 422.
    status: Annotated[
        Literal["running", "cancelling", "cancelled", "completed"] | None, Query()
    ] = None,
    kind: Annotated[Literal["fee", "script", "refund"] | None, Query()] = None,
    limit: PageLimit = PAGE_LIMIT_DEFAULT,
    after: IdAfter = None,
) -> BatchesPage:
    """Batches, newest first, each its status body; page on with ``after=next_after``."""
    page = await batches_page(svc.ledger, after, limit, status=status, kind=kind)
    return BatchesPage(items=[batch_body(row) for row in page.items], next_after=page.next_after)


@router.get(
    "/batches/{batch_id}", response_model=BatchStatusBody, responses=problem_responses(404, 422)
)
async def batch_status(batch_id: BatchIdPath, svc: ServicesDep) -> BatchStatusBody:
    row = await batch_row(svc.ledger, batch_id)
    if row is None:
        raise Problem(404, "batch_not_found", f"no batch {batch_id!r}", batch_id=batch_id)
    return batch_body(row)


@router.get(
    "/batches/{batch_id}/items",
    response_model=BatchItemsPage,
    responses=problem_responses(404, 422),
)
async def batch_items(
    batch_id: BatchIdPath,
    svc: ServicesDep,
    status: Annotated[Literal["pending", "succeeded", "replayed", "failed"] | None, Query()] = None,
    limit: PageLimit = PAGE_LIMIT_DEFAULT,
    after: Annotated[int | None, Query(ge=-1)] = None,
) -> BatchItemsPage:
    """Items in submission order with their outcomes; page on with ``after=next_after``."""
    await _batch(svc, batch_id)
    if after is not None:
        # Every seq is below MAX_BATCH_ITEMS: a cursor past it is just past the end. Clamped
        # so that the database never sees an integer too wide for its column (a 500).
        after = min(after, MAX_BATCH_ITEMS)
    # One more than shown, as every list (db.paging): a next page only when one follows.
    fetched = await BatchStore(svc.ledger).items(batch_id, status, limit + 1, after)
    items = fetched[:limit]
    next_after = items[-1].seq if len(fetched) > limit else None
    return BatchItemsPage(
        batch_id=batch_id,
        items=[item.model_dump(exclude_none=True) for item in items],
        next_after=next_after,
    )
