"""Script runs whose worker is missing, stops, is cancelled or goes silent: a run is
decided ``failed`` with its reason, never run again, and the first stored result is the answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import activity
from temporalio.client import Client
from temporalio.worker import Worker

from superscript.ledger import Ledger
from superscript.scripts import Registry
from superscript.scripts.activities import SHUTDOWN_REASON, ScriptActivities
from superscript.scripts.client import collection_input, start_script_workflow
from superscript.scripts.models import (
    RunPaymentScriptInput,
    ScriptOutcome,
    SinglePaymentCollectionInput,
    script_workflow_id,
)
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.settings import Settings
from tests.api.checks import assert_problem
from tests.conftest import serve_app, unique
from tests.leftovers import gone, read_pid, wait_gone
from tests.scripts.runs import payment_lines, post_run, run_path, script_result


async def test_pending_when_no_worker_decides_in_time(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    """No worker polls this queue: 202 pending; a terminated run is a 503, never re-run."""
    idle = settings.model_copy(update={"task_queue": unique("idle"), "result_wait_seconds": 0.3})
    async with serve_app(idle, ledger, client) as api:
        order_id = unique("order")
        workflow_id = f"SCRIPT-WF-collect-payment/{order_id}"

        posted = await post_run(api, "collect-payment", order_id, ["7"])
        fetched = await api.http.get(f"{run_path('collect-payment')}/{order_id}")

        expected = {"order_id": order_id, "status": "pending", "workflow_id": workflow_id}
        assert posted.status_code == 202 and posted.json() == expected
        assert fetched.status_code == 202 and fetched.json() == expected
        assert_problem(
            await post_run(api, "collect-payment", order_id, ["8"]), 422, "idempotency_key_reused"
        )

        await client.get_workflow_handle(workflow_id).terminate("test cleanup")
        closed = assert_problem(
            await api.http.get(f"{run_path('collect-payment')}/{order_id}"), 503, "workflow_failed"
        )
        assert closed["detail"].startswith(f"{workflow_id} closed (TERMINATED) ")
        assert_problem(
            await post_run(api, "collect-payment", order_id, ["7"]), 503, "workflow_failed"
        )
        assert payment_lines(api.settings) == []


@pytest.fixture
async def script_activities(ledger: Ledger, settings: Settings) -> ScriptActivities:
    return ScriptActivities.from_settings(ledger.engine, settings)


@contextlib.asynccontextmanager
async def quick_worker(
    client: Client,
    settings: Settings,
    activities: ScriptActivities,
    run_payment_script: Callable[..., Any] | None = None,
) -> AsyncIterator[Worker]:
    """A worker of the script workflow that cancels its activities as soon as it stops;
    its ``run_payment_script`` is the real one unless another is given."""
    worker = Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[SinglePaymentCollectionWorkflow],
        activities=[
            run_payment_script or activities.run_payment_script,
            activities.record_script_result,
        ],
        graceful_shutdown_timeout=timedelta(0),
    )
    async with worker:
        yield worker


def hanging_run(settings: Settings) -> tuple[SinglePaymentCollectionInput, Path]:
    """A hang-payment run for a new order, and the file its script writes its pid to."""
    spec = Registry(settings.scripts_dir).get("hang-payment")
    return collection_input(spec, unique("order"), []), settings.data_dir / "hang.pid"


async def test_worker_shutdown_during_the_run_fails_it_and_never_reruns(
    client: Client,
    settings: Settings,
    script_activities: ScriptActivities,
    leftover_pids: list[int],
) -> None:
    input, pid_file = hanging_run(settings)
    order_id = input.order_id

    async with quick_worker(client, settings, script_activities) as worker:
        handle = await start_script_workflow(client, input, settings.task_queue)
        pid = await read_pid(pid_file, 15)  # the script started
        leftover_pids.append(pid)
        await worker.shutdown()
    await wait_gone(pid, seconds=15)  # killed by the stopping worker

    # Another worker takes over the workflow: it records the failure, it runs nothing.
    async with quick_worker(client, settings, script_activities):
        result = await handle.result()

    assert result.status == "failed" and result.exit_code is None
    assert result.reason == SHUTDOWN_REASON and result.attempts == 1
    assert len(payment_lines(settings, f"hang-payment/{order_id}")) == 1
    record = await script_activities.runs.get("hang-payment", order_id)
    assert record is not None and record.result == result


async def test_cancelled_run_kills_the_script_and_is_a_failed_run(
    client: Client,
    settings: Settings,
    script_activities: ScriptActivities,
    leftover_pids: list[int],
) -> None:
    hanging, pid_file = hanging_run(settings)
    order_id = hanging.order_id
    # A short heartbeat timeout: the cancellation reaches the activity with a heartbeat.
    input = hanging.model_copy(update={"heartbeat_timeout_seconds": 2.0})

    async with quick_worker(client, settings, script_activities):
        handle = await start_script_workflow(client, input, settings.task_queue)
        pid = await read_pid(pid_file, 15)  # the script started
        leftover_pids.append(pid)
        await handle.cancel()
        result = await handle.result()

    assert gone(pid)
    assert result.status == "failed" and result.exit_code is None
    assert result.reason is not None and result.reason.startswith("cancelled")
    record = await script_activities.runs.get("hang-payment", order_id)
    assert record is not None and record.result == result


class StalledActivities:
    """A worker that took the attempt and then went silent (as if it had died)."""

    def __init__(self) -> None:
        self.calls = 0

    @activity.defn(name="run_payment_script")
    async def run_payment_script(self, input: RunPaymentScriptInput) -> ScriptOutcome:
        self.calls += 1
        await asyncio.Event().wait()
        raise AssertionError("unreachable")


def one_attempt(order_id: str) -> SinglePaymentCollectionInput:
    """collect-payment for ``order_id``, one attempt, lost after a second without a beat."""
    return SinglePaymentCollectionInput(
        script="collect-payment",
        order_id=order_id,
        args=["1"],
        max_attempts=1,
        timeout_seconds=30,
        heartbeat_timeout_seconds=1,
    )


async def test_lost_worker_with_one_attempt_is_a_failed_run_not_a_rerun(
    client: Client, settings: Settings, script_activities: ScriptActivities
) -> None:
    stalled = StalledActivities()
    order_id = unique("order")
    async with quick_worker(client, settings, script_activities, stalled.run_payment_script):
        handle = await start_script_workflow(client, one_attempt(order_id), settings.task_queue)
        result = await handle.result()

    assert stalled.calls == 1
    assert result.status == "failed" and result.exit_code is None and result.attempts == 1
    assert result.reason is not None and result.reason.startswith("worker lost during the run")
    assert result.workflow_id == script_workflow_id("collect-payment", order_id)
    assert payment_lines(settings) == []
    record = await script_activities.runs.get("collect-payment", order_id)
    assert record is not None and record.result == result and record.args == ["1"]


async def test_the_first_stored_result_is_the_answer(
    client: Client, settings: Settings, script_activities: ScriptActivities
) -> None:
    """As when an attempt Temporal gave up on stored its real outcome first."""
    stalled = StalledActivities()
    order_id = unique("order")
    stored = script_result("collect-payment", order_id, "collected by the lost attempt")
    await script_activities.runs.record_result(stored, ["1"])
    async with quick_worker(client, settings, script_activities, stalled.run_payment_script):
        handle = await start_script_workflow(client, one_attempt(order_id), settings.task_queue)
        assert await handle.result() == stored
