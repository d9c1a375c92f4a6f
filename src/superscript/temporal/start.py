"""Starting a workflow once per ID, whoever asks, and awaiting its result for a while.

Every workflow ID here names one business key (``FEE-WF-{order_id}``,
``SCRIPT-WF-{script}/{order_id}``, ``BATCH-WF-{batch_id}``): starting it again must never
run the work again, only reach the run that has it.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.types import MethodAsyncSingleParam

SelfType = TypeVar("SelfType")
ParamType = TypeVar("ParamType")
ReturnType = TypeVar("ReturnType")


async def start_or_join(
    client: Client,
    workflow: MethodAsyncSingleParam[SelfType, ParamType, ReturnType],
    arg: ParamType,
    *,
    id: str,
    task_queue: str,
    eager: bool = False,
) -> WorkflowHandle[SelfType, ReturnType]:
    """Start workflow ``id``, or join the run that already has that ID, open or closed.

    USE_EXISTING makes concurrent starters share the open run; REJECT_DUPLICATE keeps a
    closed run from ever running again, so the caller attaches to it and reads its
    result. The handle names the run that holds the ID, so every caller names the same
    run. ``arg`` is only used by the start that wins: a joiner's is dropped.

    ``eager`` asks for eager start: when a worker polls ``task_queue`` on this same client
    with a free workflow slot, the server hands the first workflow task back in the start's
    answer and that worker runs it at once (no trip through matching). Without such a
    worker the SDK drops the request silently, so asking is always safe.
    """
    try:
        return await client.start_workflow(
            workflow,
            arg,
            id=id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            request_eager_start=eager,
        )
    except WorkflowAlreadyStartedError as exc:
        return client.get_workflow_handle_for(workflow, id, run_id=exc.run_id)


async def result_within(
    handle: WorkflowHandle[Any, ReturnType], timeout: float
) -> ReturnType | None:
    """The workflow's result, or None if it has none within ``timeout`` seconds.

    The workflow goes on either way: the wait ends, not the run. Raises
    ``WorkflowFailureError`` when the workflow closed without a result (terminated, timed
    out, failed).
    """
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        return None
