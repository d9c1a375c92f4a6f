"""Recorded histories replay on the current workflow code: a change that breaks a running
workflow's determinism fails here, not in production.

The histories are in ``tests/histories/`` (see its README: ``record.py`` rewrites them).
Each is replayed with ``temporalio.worker.Replayer`` over the worker's own workflow classes
and the worker's data converter; a workflow whose commands differ from the recorded events
is a ``NondeterminismError``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from superscript.batches import client as batch_client
from superscript.batches import workflows as batch_workflows
from superscript.batches.models import LEGACY_PLANS, BatchInput, BatchPlan
from superscript.fees.activities import FeeActivities
from superscript.fees.models import ApplyFeeInput, FeeDeductionInput
from superscript.ledger.models import FeeOutcome
from superscript.scripts import models as script_models
from superscript.worker import workflows

HISTORIES = Path(__file__).parent / "histories"
# Recorded by tests/histories/record.py from the current code (re-recorded at will).
INDEX: list[dict[str, str]] = json.loads((HISTORIES / "index.json").read_text())
# Recorded once by the code from before batch plans travelled in the input; kept as is.
LEGACY = HISTORIES / "legacy"
LEGACY_INDEX: list[dict[str, str]] = json.loads((LEGACY / "index.json").read_text())


def load(folder: Path, entry: dict[str, str]) -> WorkflowHistory:
    return WorkflowHistory.from_json(entry["workflow_id"], (folder / entry["file"]).read_text())


def recorded(scenario: str) -> list[WorkflowHistory]:
    return [load(HISTORIES, entry) for entry in INDEX if entry["scenario"] == scenario]


def batches(scenario_end: str = "") -> dict[str, WorkflowHistory]:
    """Every recorded BatchWorkflow run, current and legacy (of scenarios ending so)."""
    return {
        f"{folder.name}/{entry['file']}": load(folder, entry)
        for folder, index in ((HISTORIES, INDEX), (LEGACY, LEGACY_INDEX))
        for entry in index
        if entry["workflow_type"] == "BatchWorkflow" and entry["scenario"].endswith(scenario_end)
    }


async def unsandboxed_failures(histories: dict[str, WorkflowHistory]) -> dict[str, str]:
    """Each history that fails to replay, with why, replayed on the (patched) host modules.

    Unsandboxed, so the workflow code sees patched module attributes exactly as a new
    deploy would see edited source; the sandbox would re-import the pristine modules.
    """
    replay = replayer(workflow_runner=UnsandboxedWorkflowRunner())
    failures: dict[str, str] = {}
    for name, history in histories.items():
        result = await replay.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[name] = str(result.replay_failure)[:300]
    return failures


def replayer(classes: Sequence[type] | None = None, **options: Any) -> Replayer:
    """A replayer configured as the worker is (same classes, same data converter)."""
    return Replayer(
        workflows=list(classes or workflows()),
        data_converter=pydantic_data_converter,
        **options,
    )


def test_index_lists_every_history_and_each_workflow_type() -> None:
    for folder, index in ((HISTORIES, INDEX), (LEGACY, LEGACY_INDEX)):
        on_disk = {path.name for path in folder.glob("*.json")} - {"index.json"}
        assert on_disk == {entry["file"] for entry in index}
    scenarios = {entry["scenario"] for entry in INDEX}
    assert {
        "fee-charged",
        "fee-declined",
        "script-succeeded",
        "script-failed",
        "script-batch",
        "fee-batch",
    } <= scenarios
    kinds = {entry["workflow_type"] for entry in INDEX}
    assert kinds == {"FeeDeductionWorkflow", "SinglePaymentCollectionWorkflow", "BatchWorkflow"}
    chain = [entry for entry in INDEX if entry["scenario"] == "fee-batch"]
    assert len(chain) >= 2, "the fee batch must have continued as new"
    children = [e for e in INDEX if e["scenario"] == "script-batch" and ".child-" in e["file"]]
    assert children, "the script batch must have started child workflows"


@pytest.mark.parametrize("entry", INDEX, ids=[entry["file"] for entry in INDEX])
async def test_recorded_history_replays(entry: dict[str, str]) -> None:
    result = await replayer().replay_workflow(load(HISTORIES, entry))
    assert result.replay_failure is None


@pytest.mark.parametrize("entry", LEGACY_INDEX, ids=[entry["file"] for entry in LEGACY_INDEX])
async def test_batch_from_before_plans_replays(entry: dict[str, str]) -> None:
    """A batch started by the code that read module constants (and built its children's
    IDs itself) still replays: upgrading the worker breaks no running batch."""
    result = await replayer().replay_workflow(load(LEGACY, entry))
    assert result.replay_failure is None


# A deliberately changed fee workflow: one more activity before the charge. Replaying a
# recorded fee history over it must fail, or the replay check above proves nothing.
@workflow.defn(name="FeeDeductionWorkflow", sandboxed=False)
class FeeWorkflowWithAnExtraActivity:
    @workflow.run
    async def run(self, input: FeeDeductionInput) -> FeeOutcome:
        await workflow.execute_activity(
            "check_fraud", input.order.order_id, start_to_close_timeout=timedelta(seconds=10)
        )
        return await workflow.execute_activity_method(
            FeeActivities.apply_fee,
            ApplyFeeInput(order=input.order),
            start_to_close_timeout=timedelta(seconds=10),
        )


@pytest.mark.parametrize("scenario", ["fee-charged", "fee-declined"])
async def test_a_changed_command_sequence_fails_the_replay(scenario: str) -> None:
    (history,) = recorded(scenario)
    with pytest.raises(workflow.NondeterminismError):
        await replayer([FeeWorkflowWithAnExtraActivity]).replay_workflow(history)


async def test_changed_batch_defaults_leave_recorded_batches_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A deploy with other batch sizes replays every running batch as it was started.

    Before the sizes travelled in the input, the workflow read these constants and this
    replay failed.
    """
    changed = {"FEE_CHUNK_SIZE": 3, "SCRIPT_CHUNK_SIZE": 1, "WINDOW": 1, "MAX_HISTORY_EVENTS": 5}
    for name, value in changed.items():
        monkeypatch.setattr(batch_client, name, value)
        monkeypatch.setattr(batch_workflows, name, value, raising=False)
    assert batch_client.default_plan("fee") == BatchPlan(
        chunk_size=3, window=1, max_history_events=5
    )
    histories = batches()
    assert len(histories) >= 5
    assert await unsandboxed_failures(histories) == {}


async def test_a_changed_script_id_format_leaves_recorded_batches_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The child IDs a batch starts are in its history (the plan activity's result).

    Before, the workflow built them with ``script_workflow_id``: a deploy that changed the
    ID format failed every running script batch with a nondeterminism error.
    """

    def another_format(script: str, order_id: str) -> str:
        return f"SCRIPT-WF-{script}/{order_id}/v2"

    monkeypatch.setattr(script_models, "script_workflow_id", another_format)
    monkeypatch.setattr(batch_workflows, "script_workflow_id", another_format, raising=False)
    script_batches = batches("script-batch")
    assert len(script_batches) == 2
    assert await unsandboxed_failures(script_batches) == {}


def test_the_plan_goes_on_through_continue_as_new() -> None:
    """Every run of the recorded fee batch got the plan its first run was started with."""
    inputs: list[BatchInput] = []
    for history in recorded("fee-batch"):
        payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
        (start,) = pydantic_data_converter.payload_converter.from_payloads(payloads, [BatchInput])
        inputs.append(start)
    assert len(inputs) >= 2
    assert [start.plan for start in inputs] == [inputs[0].plan] * len(inputs)
    assert inputs[0].plan != batch_client.default_plan("fee")  # the recorder's small plan
    assert [start.next_seq > 0 for start in inputs] == [False] + [True] * (len(inputs) - 1)


def test_an_input_from_before_plans_gets_the_plan_that_code_used() -> None:
    old = {"batch_id": "b", "kind": "script", "script": "s", "total": 9, "next_seq": 3}
    assert BatchInput.model_validate(old).plan == LEGACY_PLANS["script"]
    assert (
        BatchInput.model_validate_json(json.dumps({**old, "kind": "fee"})).plan
        == LEGACY_PLANS["fee"]
    )
    chosen = BatchPlan(chunk_size=7, window=2, max_history_events=100)
    carried = BatchInput(batch_id="b", kind="fee", total=9, plan=chosen)
    assert BatchInput.model_validate_json(carried.model_dump_json()).plan == chosen


def _markers_and_activities(history: WorkflowHistory) -> tuple[list[str], int]:
    markers = [
        event.marker_recorded_event_attributes.marker_name
        for event in history.events
        if event.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
    ]
    scheduled = sum(
        event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED for event in history.events
    )
    return markers, scheduled


def test_fee_histories_hold_both_branches_of_the_local_activity_patch() -> None:
    """Fee runs from before the patch (a regular activity) and after it (the patch marker and
    the local activity's marker, no activity task) are both recorded, so both branches of
    ``FeeDeductionWorkflow`` are replayed above."""
    legacy = [
        load(LEGACY, entry)
        for entry in LEGACY_INDEX
        if entry["workflow_type"] == "FeeDeductionWorkflow"
    ]
    assert len(legacy) == 2
    for history in legacy:
        assert _markers_and_activities(history) == ([], 1)
    for history in recorded("fee-charged") + recorded("fee-declined"):
        assert _markers_and_activities(history) == (["core_patch", "core_local_activity"], 0)
