"""Claims of a key's attempts in the ledger: concurrent claimers get each attempt once, and
a ledger that can't record a claim starts nothing. The ledger counts starts, not Temporal.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from superscript.db.engine import create_engine
from superscript.db.migrate import migrate
from superscript.ledger import Ledger
from superscript.scripts import Registry
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
from tests.conftest import at_once, unique
from tests.processes import wait_until
from tests.scripts.runs import starts

# (c) Concurrent claims ---------------------------------------------------------------


@pytest.fixture
async def other_engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    """A second engine on the test's ledger database, as a second worker has."""
    engine = create_engine(db_url)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.mark.parametrize("max_attempts", [1, 3])
async def test_c_concurrent_claims_grant_each_attempt_once(
    ledger: Ledger, other_engine: AsyncEngine, max_attempts: int
) -> None:
    """Eight claimers on two engines (as two workers), started together."""
    stores = [ScriptRuns(ledger.engine), ScriptRuns(other_engine)]
    order_id = unique("order")

    async def claim(i: int) -> AttemptClaim:
        starter = AttemptStarter(workflow_id="SCRIPT-WF-test", run_id=f"run-{i}")
        return await stores[i % 2].claim_attempt("s", order_id, ["a"], max_attempts, starter)

    claims = await at_once(8, claim)

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
    ledger: Ledger, other_engine: AsyncEngine, settings: Settings
) -> None:
    """The real activity twice at once (two workers, two engines): one start."""
    workers = [
        ScriptActivities.from_settings(ledger.engine, settings),
        ScriptActivities.from_settings(other_engine, settings),
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

            failed: list[str] = []

            async def activity_failed() -> bool:
                failed[:] = await failure_types()
                return bool(failed)

            what = "the activity failing on the unmigrated ledger"
            await wait_until(activity_failed, what, 30, interval=0.05)
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
