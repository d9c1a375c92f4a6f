"""Fee routes: the seed's naive DeductFee beside the idempotent Temporal-backed one."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from superscript.api.deps import (
    ClientDep,
    LedgerDep,
    MetricsDep,
    Services,
    ServicesDep,
    SettingsDep,
)
from superscript.api.metrics import Metrics
from superscript.api.problems import Problem, closed_undecided
from superscript.api.schemas import (
    FeeBody,
    FeeRequest,
    NaiveFeeBody,
    OrderIdPath,
    PendingBody,
    problem_responses,
)
from superscript.fees.client import start_fee_workflow
from superscript.fees.models import fee_workflow_id
from superscript.fees.naive import naive_deduct_fee
from superscript.ledger import FeeOrder, FeeOutcome, IdempotencyKeyReused, LedgerError
from superscript.temporal.start import result_within

router = APIRouter(tags=["fees"])


@router.post(
    "/naive/orders/{order_id}/fee",
    response_model=NaiveFeeBody,
    responses=problem_responses(401, 402, 404, 413, 422),
)
async def naive_fee(
    order_id: OrderIdPath,
    body: FeeRequest,
    ledger: LedgerDep,
    settings: SettingsDep,
    metrics: MetricsDep,
) -> NaiveFeeBody:
    """Deduct after a random delay, every call: the double charge this project prevents."""
    order = FeeOrder(order_id=order_id, account_id=body.account_id, amount=body.amount)
    try:
        account = await naive_deduct_fee(ledger, order, settings.naive_delay)
    except LedgerError as exc:
        raise Problem.from_ledger(exc, order_id=order_id) from exc
    metrics.naive_charges.inc()
    return NaiveFeeBody(
        order_id=order_id, account_id=order.account_id, amount=order.amount, balance=account.balance
    )


def _pending(order_id: str) -> JSONResponse:
    body = PendingBody(order_id=order_id, status="pending", workflow_id=fee_workflow_id(order_id))
    return JSONResponse(body.model_dump(), status_code=202)


def _answer(outcome: FeeOutcome, metrics: Metrics) -> FeeBody:
    """The same body for every caller of one order, built from its recorded outcome."""
    metrics.fee_outcomes.labels(outcome.status).inc()
    failure = outcome.failure
    if failure is not None:
        raise Problem.from_ledger(
            failure,
            order_id=outcome.order_id,
            account_id=outcome.account_id,
            amount=outcome.amount,
            workflow_id=outcome.workflow_id,
            run_id=outcome.run_id,
        )
    assert outcome.balance_after is not None
    return FeeBody(
        order_id=outcome.order_id,
        account_id=outcome.account_id,
        amount=outcome.amount,
        balance_after=outcome.balance_after,
        status="charged",
        workflow_id=outcome.workflow_id,
        run_id=outcome.run_id,
    )


def _check_same_order(outcome: FeeOutcome, order: FeeOrder) -> None:
    if not outcome.matches(order):
        raise Problem.from_ledger(
            IdempotencyKeyReused(
                f"order {order.order_id!r} was already placed for account "
                f"{outcome.account_id!r} and amount {outcome.amount}; nothing was charged"
            ),
            order_id=order.order_id,
        )


@router.post(
    "/orders/{order_id}/fee",
    response_model=FeeBody,
    responses={202: {"model": PendingBody}, **problem_responses(401, 402, 404, 413, 422, 503)},
)
async def charge_fee(
    order_id: OrderIdPath, body: FeeRequest, svc: ServicesDep
) -> FeeBody | Response:
    """Charge once per order through ``FEE-WF-{order_id}``; every caller gets one answer."""
    order = FeeOrder(order_id=order_id, account_id=body.account_id, amount=body.amount)
    outcome = await svc.ledger.get_fee_outcome(order_id)
    if outcome is None:
        # Concurrent callers of this order share the first one's start and wait; any of
        # them who asked for another account or amount is refused below, as if it had
        # joined the workflow itself.
        outcome = await svc.fee_waits.run(order_id, lambda: _decide(svc, order))
        if outcome is None:
            return _pending(order_id)
    _check_same_order(outcome, order)
    return _answer(outcome, svc.metrics)


async def _decide(svc: Services, order: FeeOrder) -> FeeOutcome | None:
    """Start (or join) ``FEE-WF-{order_id}``, wait, and take the outcome from the ledger.

    The workflow's result is never the answer: a Temporal history written for another
    ledger (or a run whose record is gone) holds results this ledger never recorded, and
    answering with one would report a charge that did not happen here. None: still running.
    """
    handle = await start_fee_workflow(svc.client, order, svc.settings.task_queue)
    try:
        result = await result_within(handle, svc.settings.result_wait_seconds)
    except WorkflowFailureError as exc:
        outcome = await svc.ledger.get_fee_outcome(order.order_id)
        if outcome is None:
            raise Problem(
                503,
                "workflow_failed",
                f"{handle.id} ended without deciding the order: {exc.cause}",
                order_id=order.order_id,
            ) from exc
        return outcome
    if result is None:
        return None
    # This process's worker ran it (eager start) and read the outcome from this ledger: the
    # ledger's answer already. Otherwise, read it: the result alone is never the answer.
    outcome = svc.decided.take(order.order_id) if svc.decided is not None else None
    if outcome is None:
        outcome = await svc.ledger.get_fee_outcome(order.order_id)
    if outcome is None:
        raise _not_in_ledger(handle.id, order.order_id)
    return outcome


def _not_in_ledger(workflow_id: str, order_id: str) -> Problem:
    """A closed workflow whose outcome this ledger does not hold: nothing to answer with."""
    return Problem(
        503,
        "workflow_result_not_in_ledger",
        f"{workflow_id} returned an outcome this ledger does not hold; nothing was charged "
        "here. Its Temporal history was written for another ledger (or the record is "
        "missing): check that the API, the workers and Temporal share one ledger.",
        order_id=order_id,
    )


@router.get(
    "/orders/{order_id}/fee",
    response_model=FeeBody,
    responses={202: {"model": PendingBody}, **problem_responses(402, 404, 422, 503)},
)
async def get_fee(
    order_id: OrderIdPath, ledger: LedgerDep, client: ClientDep, metrics: MetricsDep
) -> FeeBody | Response:
    """The order's decided outcome, 202 while its workflow runs, 404 if never placed."""
    outcome = await ledger.get_fee_outcome(order_id)
    if outcome is not None:
        return _answer(outcome, metrics)
    workflow_id = fee_workflow_id(order_id)
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(
                404, "order_not_found", f"no fee order {order_id!r}", order_id=order_id
            ) from exc
        raise
    if description.close_time is None:
        return _pending(order_id)
    # It may have decided since the first read: its activity records before it closes.
    outcome = await ledger.get_fee_outcome(order_id)
    if outcome is not None:
        return _answer(outcome, metrics)
    not_held = _not_in_ledger(workflow_id, order_id).detail
    raise closed_undecided(workflow_id, description.status, "order", not_held, order_id=order_id)
