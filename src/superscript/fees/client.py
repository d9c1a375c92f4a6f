"""Starting and awaiting fee workflows: what the API and the demo call."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from superscript.fees.models import FeeDeductionInput, fee_workflow_id
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger.models import FeeOrder, FeeOutcome


async def start_fee_workflow(
    client: Client, order: FeeOrder, task_queue: str
) -> WorkflowHandle[FeeDeductionWorkflow, FeeOutcome]:
    """Start ``FEE-WF-{order_id}``, or join the run that already has that ID.

    USE_EXISTING makes concurrent starters share the open run; REJECT_DUPLICATE keeps a
    closed run from ever running again, so we attach to it and read its result.
    """
    workflow_id = fee_workflow_id(order.order_id)
    try:
        return await client.start_workflow(
            FeeDeductionWorkflow.run,
            FeeDeductionInput(order=order),
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError as exc:
        # The run that holds the ID, so every caller names the same run.
        return client.get_workflow_handle_for(
            FeeDeductionWorkflow.run, workflow_id, run_id=exc.run_id
        )


async def wait_for_outcome(
    handle: WorkflowHandle[FeeDeductionWorkflow, FeeOutcome], timeout: float
) -> FeeOutcome | None:
    """The workflow's result, or None if it has none within ``timeout`` seconds.

    A decline completes the workflow like a charge; ``WorkflowFailureError`` means the
    workflow ended without an outcome (terminated, timed out, or a fault). The result is
    what Temporal holds: callers answer from the ledger, which may not hold it.
    """
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        return None
