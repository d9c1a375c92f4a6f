"""Requesting script runs: record the args, start or join the key's workflow, await it.

What the API (and any other caller, such as the demo) uses: ``request_script_run`` does
the whole exactly-once dance for one key, the smaller functions are its parts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from superscript.batches.models import WORKFLOW_ID_PREFIX as BATCH_WORKFLOW_PREFIX
from superscript.scripts.models import (
    ScriptRunResult,
    SinglePaymentCollectionInput,
    script_workflow_id,
)
from superscript.scripts.records import ScriptRunRecord, ScriptRuns
from superscript.scripts.registry import ScriptSpec
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.temporal.start import result_within, start_or_join

ScriptHandle = WorkflowHandle[SinglePaymentCollectionWorkflow, ScriptRunResult]

# Reading the record of a key a batch runs itself, while it runs: the first wait, the most.
BATCH_POLL_FIRST: Final = 0.05
BATCH_POLL_MOST: Final = 1.0


class RunUndecided(Exception):
    """The key's workflow closed without a result (terminated, timed out, failed)."""

    code = "workflow_failed"

    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(detail)
        self.workflow_id = workflow_id
        self.detail = detail


class ResultNotRecorded(RunUndecided):
    """The key's workflow returned a result that the ``script_runs`` record does not hold.

    Its Temporal history was written for another ledger, or the run could not be
    recorded: either way this ledger has no decided run to answer with.
    """

    code = "workflow_result_not_in_ledger"


def not_recorded(workflow_id: str) -> ResultNotRecorded:
    return ResultNotRecorded(
        workflow_id,
        f"{workflow_id} returned a result this ledger does not hold; nothing is recorded "
        "here for this run. Its Temporal history was written for another ledger (or the "
        "result could not be stored): check that the API, the workers and Temporal share "
        "one ledger.",
    )


@dataclass(frozen=True)
class Pending:
    """The key's run is not decided yet; ``workflow_id`` names the workflow running it."""

    workflow_id: str


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
    """Start ``SCRIPT-WF-{script}/{order_id}``, or join the run that already has that ID."""
    return await start_or_join(
        client,
        SinglePaymentCollectionWorkflow.run,
        input,
        id=script_workflow_id(input.script, input.order_id),
        task_queue=task_queue,
    )


def script_handle(client: Client, script: str, order_id: str) -> ScriptHandle:
    """A handle on the key's workflow (its latest run), started or not."""
    return client.get_workflow_handle_for(
        SinglePaymentCollectionWorkflow.run, script_workflow_id(script, order_id)
    )


async def started_for(client: Client, handle: ScriptHandle) -> tuple[str, str] | None:
    """The (script, order_id) the workflow was started for, read from its first event.

    None when there is no such workflow, or it is not a script run.
    """
    try:
        async for event in handle.fetch_history_events():
            started = event.workflow_execution_started_event_attributes
            if started.workflow_type.name != SinglePaymentCollectionWorkflow.__name__:
                return None
            try:
                (input,) = await client.data_converter.decode(
                    started.input.payloads, [SinglePaymentCollectionInput]
                )
            except (TypeError, ValueError, RuntimeError):
                return None
            assert isinstance(input, SinglePaymentCollectionInput)
            return input.script, input.order_id
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    return None


async def claim_key(
    runs: ScriptRuns, script: str, order_id: str, args: Sequence[str]
) -> ScriptRunRecord:
    """Insert-if-absent under the key's own workflow ID: the first args win, and other
    args raise ``IdempotencyKeyReused`` (the API and a batch claim keys alike)."""
    return await runs.claim(script, order_id, args, script_workflow_id(script, order_id))


async def workflow_for(client: Client, script: str, order_id: str, recorded: str) -> str:
    """The workflow ID that runs the key: ``recorded`` if it was started for this very key,
    else the key's own.

    Records stored before ``SCRIPT-WF-{name}/{order_id}`` name an older, ambiguous ID
    (``SCRIPT-WF-pay-x-1`` is both ``pay``/``x-1`` and ``pay-x``/``1``). One started for
    the other key means this key's run never began: it runs under its own ID (joining the
    other key's run would answer, or wait, for the wrong key).
    """
    own = script_workflow_id(script, order_id)
    if recorded == own:
        return own
    handle = client.get_workflow_handle_for(SinglePaymentCollectionWorkflow.run, recorded)
    return recorded if await started_for(client, handle) == (script, order_id) else own


async def recorded_run(client: Client, record: ScriptRunRecord) -> ScriptHandle | None:
    """The workflow the key's record names, when it is not the key's own ID and runs this
    key (see ``workflow_for``); None tells the caller to use (start) the key's own."""
    chosen = await workflow_for(client, record.script, record.order_id, record.workflow_id)
    if chosen == script_workflow_id(record.script, record.order_id):
        return None
    return client.get_workflow_handle_for(SinglePaymentCollectionWorkflow.run, chosen)


def result_of(record: ScriptRunRecord | None, workflow_id: str) -> ScriptRunResult:
    """The recorded result: the answer, whatever the workflow returned.

    Raises ``ResultNotRecorded`` when the record holds none.
    """
    if record is None or record.result is None:
        raise not_recorded(workflow_id)
    return record.result


async def request_script_run(
    client: Client,
    runs: ScriptRuns,
    spec: ScriptSpec,
    order_id: str,
    args: Sequence[str],
    *,
    task_queue: str,
    wait_seconds: float,
) -> ScriptRunResult | Pending:
    """Run ``spec`` once for ``order_id``, however many callers ask; ``Pending`` meanwhile.

    The args are recorded before the workflow starts, so a caller with other args is
    refused (``IdempotencyKeyReused``) and nothing runs for it. A decided run is answered
    from the record, without Temporal, and so is a run once its workflow returns: the
    workflow's own result is never the answer. A pending record that names an older
    workflow ID joins that workflow if it runs this key (see ``recorded_run``). Raises
    ``RunUndecided`` when the key's workflow closed without a result, and
    ``ResultNotRecorded`` when it returned one the record does not hold.
    """
    record = await runs.get(spec.name, order_id)
    if record is None:
        record = await claim_key(runs, spec.name, order_id, args)
    record.check_args(args)
    if record.result is not None:
        return record.result
    if record.workflow_id.startswith(BATCH_WORKFLOW_PREFIX):
        answer = await batch_run(client, runs, record, wait_seconds)
        if answer is not None:
            return answer

    handle = await recorded_run(client, record) or await start_script_workflow(
        client, collection_input(spec, order_id, args), task_queue
    )
    try:
        result = await result_within(handle, wait_seconds)
    except WorkflowFailureError as exc:
        # The workflow records its result before it returns, so a record may exist.
        record = await runs.get(spec.name, order_id)
        if record is not None and record.result is not None:
            return record.result
        raise RunUndecided(
            handle.id, f"{handle.id} ended without deciding the run: {exc.cause}"
        ) from exc
    if result is None:
        return Pending(handle.id)
    # The workflow stores its result before it returns: the record is the answer.
    return result_of(await runs.get(spec.name, order_id), handle.id)


async def batch_run(
    client: Client, runs: ScriptRuns, record: ScriptRunRecord, wait_seconds: float
) -> ScriptRunResult | Pending | None:
    """The run of a key a batch claimed and runs itself (no workflow of its own).

    Its result once the batch records it; ``Pending`` (the batch's workflow ID) after
    ``wait_seconds``; None once that batch no longer runs and the key is still pending
    (terminated mid-run): the key's own workflow takes over, and the ledger's attempt
    claims keep it to ``max_attempts`` starts.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    delay = BATCH_POLL_FIRST
    while True:
        running = await batch_running(client, record.workflow_id)
        latest = await runs.get(record.script, record.order_id)
        if latest is not None and latest.result is not None:
            return latest.result
        if not running:
            return None
        left = deadline - loop.time()
        if left <= 0:
            return Pending(record.workflow_id)
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 2, BATCH_POLL_MOST)


async def runs_in_batch(client: Client, record: ScriptRunRecord) -> bool:
    """Whether a batch claimed the key to run it itself, and still runs."""
    return record.workflow_id.startswith(BATCH_WORKFLOW_PREFIX) and await batch_running(
        client, record.workflow_id
    )


async def batch_running(client: Client, workflow_id: str) -> bool:
    """Whether the batch workflow ``workflow_id`` (its latest run) is running."""
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return description.status == WorkflowExecutionStatus.RUNNING


async def await_script_run(
    client: Client,
    runs: ScriptRuns,
    spec: ScriptSpec,
    order_id: str,
    args: Sequence[str],
    *,
    task_queue: str,
    wait_seconds: float,
) -> ScriptRunResult:
    """``request_script_run`` until the run is decided: for a batch that waits on a key
    someone else runs (its caller heartbeats meanwhile)."""
    while True:
        answer = await request_script_run(
            client, runs, spec, order_id, args, task_queue=task_queue, wait_seconds=wait_seconds
        )
        if not isinstance(answer, Pending):
            return answer
