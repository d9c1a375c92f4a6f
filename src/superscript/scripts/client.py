"""Requesting script runs: record the args, start or join the key's workflow, await it.

What the API (and any other caller, such as the demo) uses: ``request_script_run`` does
the whole exactly-once dance for one key, the smaller functions are its parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from superscript.scripts.models import (
    ScriptRunResult,
    SinglePaymentCollectionInput,
    script_workflow_id,
)
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import ScriptSpec
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow

ScriptHandle = WorkflowHandle[SinglePaymentCollectionWorkflow, ScriptRunResult]


class RunUndecided(Exception):
    """The key's workflow closed without a result (terminated, timed out, failed)."""

    code = "workflow_failed"

    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(detail)
        self.workflow_id = workflow_id
        self.detail = detail


def collection_input(
    spec: ScriptSpec, order_id: str, args: Sequence[str]
) -> SinglePaymentCollectionInput:
    """The workflow input, with the script's header settings as they are right now."""
    return SinglePaymentCollectionInput(
        script=spec.name,
        order_id=order_id,
        args=list(args),
        max_attempts=spec.max_attempts,
        timeout_seconds=spec.timeout_seconds,
    )


async def start_script_workflow(
    client: Client, input: SinglePaymentCollectionInput, task_queue: str
) -> ScriptHandle:
    """Start ``SCRIPT-WF-{script}-{order_id}``, or join the run that already has that ID.

    USE_EXISTING makes concurrent starters share the open run; REJECT_DUPLICATE keeps a
    closed run from ever running again, so we attach to it and read its result.
    """
    workflow_id = script_workflow_id(input.script, input.order_id)
    try:
        return await client.start_workflow(
            SinglePaymentCollectionWorkflow.run,
            input,
            id=workflow_id,
            task_queue=task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        )
    except WorkflowAlreadyStartedError:
        return script_handle(client, input.script, input.order_id)


def script_handle(client: Client, script: str, order_id: str) -> ScriptHandle:
    """A handle on the key's workflow (its latest run), started or not."""
    return client.get_workflow_handle_for(
        SinglePaymentCollectionWorkflow.run, script_workflow_id(script, order_id)
    )


async def wait_for_result(handle: ScriptHandle, timeout: float) -> ScriptRunResult | None:
    """The run's result, or None if it is not decided within ``timeout`` seconds.

    Raises ``WorkflowFailureError`` when the workflow closed without a result.
    """
    try:
        return await asyncio.wait_for(handle.result(), timeout)
    except TimeoutError:
        return None


async def request_script_run(
    client: Client,
    runs: ScriptRuns,
    spec: ScriptSpec,
    order_id: str,
    args: Sequence[str],
    *,
    task_queue: str,
    wait_seconds: float,
) -> ScriptRunResult | None:
    """Run ``spec`` once for ``order_id``, however many callers ask; None while pending.

    The args are recorded before the workflow starts, so a caller with other args is
    refused (``IdempotencyKeyReused``) and nothing runs for it. A decided run is answered
    from the record, without Temporal. Raises ``RunUndecided`` when the key's workflow
    closed without a result.
    """
    record = await runs.get(spec.name, order_id)
    if record is None:
        # Insert-if-absent: the first args win; other args raise IdempotencyKeyReused.
        record = await runs.claim(
            spec.name, order_id, args, script_workflow_id(spec.name, order_id)
        )
    record.check_args(args)
    if record.result is not None:
        return record.result

    handle = await start_script_workflow(client, collection_input(spec, order_id, args), task_queue)
    try:
        return await wait_for_result(handle, wait_seconds)
    except WorkflowFailureError as exc:
        # The workflow records its result before it returns, so a record may exist.
        record = await runs.get(spec.name, order_id)
        if record is not None and record.result is not None:
            return record.result
        raise RunUndecided(
            handle.id, f"{handle.id} ended without deciding the run: {exc.cause}"
        ) from exc
