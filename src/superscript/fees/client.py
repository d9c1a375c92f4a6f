"""Starting fee workflows: what the API and the demo call."""

from __future__ import annotations

from temporalio.client import Client, WorkflowHandle

from superscript.fees.models import FeeDeductionInput, fee_workflow_id
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger.models import FeeOrder, FeeOutcome
from superscript.temporal.start import start_or_join


async def start_fee_workflow(
    client: Client, order: FeeOrder, task_queue: str
) -> WorkflowHandle[FeeDeductionWorkflow, FeeOutcome]:
    """Start ``FEE-WF-{order_id}``, or join the run that already has that ID.

    Await it with ``superscript.temporal.start.result_within``. A decline completes the
    workflow like a charge; ``WorkflowFailureError`` means it ended without an outcome
    (terminated, timed out, or a fault). Its result is what Temporal holds: callers
    answer from the ledger, which may not hold it.
    """
    return await start_or_join(
        client,
        FeeDeductionWorkflow.run,
        FeeDeductionInput(order=order),
        id=fee_workflow_id(order.order_id),
        task_queue=task_queue,
        # A fee run is one workflow task (its local activity inside): eager start makes
        # the call one round trip when this client's process hosts a worker.
        eager=True,
    )
