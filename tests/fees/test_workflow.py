"""FeeDeductionWorkflow on a real dev server: one run, one charge, for any number of callers."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from superscript.fees.activities import FeeActivities
from superscript.fees.client import start_fee_workflow
from superscript.fees.models import ApplyFeeInput
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger import Decider, FeeOrder, FeeOutcome, Ledger
from superscript.settings import Settings
from tests.conftest import at_once, unique


class CountingFeeActivities(FeeActivities):
    """The real activity, counting how often Temporal actually executes it."""

    def __init__(self, ledger: Ledger) -> None:
        super().__init__(ledger)
        self.executions = 0

    @activity.defn(name="apply_fee")
    async def apply_fee(self, input: ApplyFeeInput) -> FeeOutcome:
        self.executions += 1
        return await super().apply_fee(input)


@pytest.fixture
async def counted(
    client: Client, ledger: Ledger, settings: Settings
) -> AsyncIterator[CountingFeeActivities]:
    activities = CountingFeeActivities(ledger)
    async with Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[FeeDeductionWorkflow],
        activities=[activities.apply_fee],
    ):
        yield activities


async def new_order(ledger: Ledger, amount: int, balance: int | None) -> FeeOrder:
    """An order of ``amount`` on a new account holding ``balance`` (None: never opened)."""
    account_id = unique("acc")
    if balance is not None:
        await ledger.create_account(account_id, balance)
    return FeeOrder(order_id=unique("order"), account_id=account_id, amount=amount)


async def completed_outcome(client: Client, order: FeeOrder, settings: Settings) -> FeeOutcome:
    """Start the order's workflow and wait for its outcome; the run must be COMPLETED."""
    handle = await start_fee_workflow(client, order, settings.task_queue)
    outcome = await handle.result()
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    return outcome


async def apply_in_activity(ledger: Ledger, order: FeeOrder) -> FeeOutcome:
    """The real activity, run once outside any worker (as a retry would run it)."""
    environment = ActivityEnvironment()
    outcome: FeeOutcome = await environment.run(
        FeeActivities(ledger).apply_fee, ApplyFeeInput(order=order)
    )
    return outcome


@pytest.mark.parametrize("callers", [5, 50])
async def test_concurrent_starters_share_one_run_and_one_charge(
    callers: int,
    client: Client,
    ledger: Ledger,
    settings: Settings,
    counted: CountingFeeActivities,
) -> None:
    order = await new_order(ledger, 250, 10_000)

    async def caller(_: int) -> tuple[str | None, FeeOutcome]:
        handle = await start_fee_workflow(client, order, settings.task_queue)
        return handle.result_run_id, await handle.result()

    results = await at_once(callers, caller)

    run_ids = {run_id for run_id, _ in results}
    outcomes = {outcome for _, outcome in results}
    assert len(run_ids) == 1 and None not in run_ids
    assert len(outcomes) == 1
    (outcome,) = outcomes
    assert outcome.status == "charged" and outcome.balance_after == 9_750
    assert outcome.run_id in run_ids
    assert counted.executions == 1
    assert await ledger.charges_for(order.order_id) == 1
    assert (await ledger.get_account(order.account_id)).balance == 9_750


async def test_start_after_completion_replays_the_closed_run(
    client: Client, ledger: Ledger, settings: Settings, counted: CountingFeeActivities
) -> None:
    order = await new_order(ledger, 40, 100)

    first = await start_fee_workflow(client, order, settings.task_queue)
    first_outcome = await first.result()
    again = await start_fee_workflow(client, order, settings.task_queue)

    assert await again.result() == first_outcome
    assert again.result_run_id == first.result_run_id is not None
    assert counted.executions == 1
    assert (await ledger.get_account(order.account_id)).balance == 60


def _faults(records: list[logging.LogRecord]) -> list[str]:
    """What an operator would be paged for: warnings, errors and tracebacks."""
    return [r.getMessage() for r in records if r.levelno >= logging.WARNING or r.exc_info]


@pytest.mark.parametrize("ghost", [False, True], ids=["insufficient_funds", "account_not_found"])
async def test_declined_fee_completes_with_its_outcome_and_logs_one_line(
    ghost: bool,
    client: Client,
    ledger: Ledger,
    settings: Settings,
    counted: CountingFeeActivities,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A decline is the order's outcome, not a fault: COMPLETED, no traceback."""
    caplog.set_level(logging.INFO)
    order = await new_order(ledger, 11, None if ghost else 10)
    status = "account_not_found" if ghost else "insufficient_funds"

    outcome = await completed_outcome(client, order, settings)

    recorded = await ledger.get_fee_outcome(order.order_id)
    assert recorded is not None and recorded == outcome and outcome.status == status
    assert counted.executions == 1
    assert _faults(caplog.records) == []
    mentions = [r.getMessage() for r in caplog.records if order.order_id in r.getMessage()]
    assert len(mentions) == 1
    assert f"order {order.order_id} declined: {status} (FEE-WF-{order.order_id})" in mentions[0]


async def test_order_held_with_another_payload_completes_with_the_recorded_outcome(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    counted: CountingFeeActivities,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The ledger already holds the order (from a batch): the workflow returns that."""
    caplog.set_level(logging.INFO)
    order = await new_order(ledger, 300, 1_000)
    earlier = await ledger.apply_fee(order, Decider(workflow_id="BATCH-WF-b-1"))

    outcome = await completed_outcome(client, order.model_copy(update={"amount": 1}), settings)

    assert outcome == earlier.outcome and outcome.workflow_id == "BATCH-WF-b-1"
    assert (await ledger.get_account(order.account_id)).balance == 700
    assert await ledger.charges_for(order.order_id) == 1
    assert _faults(caplog.records) == []
    assert any("idempotency_key_reused" in r.getMessage() for r in caplog.records)


async def test_activity_applied_twice_charges_once(ledger: Ledger) -> None:
    """As after a crash between the ledger commit and the completion report."""
    order = await new_order(ledger, 300, 1_000)

    first = await apply_in_activity(ledger, order)
    second = await apply_in_activity(ledger, order)

    assert first == second
    assert first.balance_after == 700
    assert await ledger.charges_for(order.order_id) == 1
    assert (await ledger.get_account(order.account_id)).balance == 700


async def test_activity_returns_the_recorded_outcome_for_a_reused_key(ledger: Ledger) -> None:
    order = await new_order(ledger, 300, 1_000)
    first = await apply_in_activity(ledger, order)

    again = await apply_in_activity(ledger, order.model_copy(update={"amount": 1}))

    assert again == first and not again.matches(order.model_copy(update={"amount": 1}))
    assert (await ledger.get_account(order.account_id)).balance == 700
