"""An order's whole story (``GET /orders/{order_id}/history``), told from the records.

The ledger says what was decided, by whom, what each batch that carried the order
reported and what the journal holds: that is the answer to "you charged me twice". Its
Temporal workflows are added with their status when Temporal answers; when it does not,
the answer says so (``"temporal": "unavailable"``) and is otherwise whole.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowExecutionDescription
from temporalio.service import RPCError, RPCStatusCode

from superscript.api.list_bodies import HistoryBody, HistoryEvent, OrderBody, batch_body
from superscript.batches.listing import CarriedItem, batches_of_order
from superscript.fees.models import fee_workflow_id
from superscript.ledger import Ledger
from superscript.ledger.listing import Entry, entries_of_order, utc
from superscript.scripts.listing import runs_of_order
from superscript.scripts.models import script_workflow_id

TEMPORAL_TIMEOUT = timedelta(seconds=5)
# Events of one moment in the order they happen: a batch is submitted, its workflow
# starts, the order is decided and journaled.
RANK = {"batch": 0, "workflow": 1, "decided": 2, "script_run": 2, "journal_entry": 3, "refund": 4}


def _in_story_order(events: list[HistoryEvent], decider: str | None) -> list[HistoryEvent]:
    """Oldest first. The ledger keeps whole seconds, Temporal finer: within one second a
    record is placed at the start of the workflow run it came from (``decider`` made the
    order's journal entries), then by ``RANK``."""
    starts: dict[str, datetime] = {}
    for event in events:
        wid = (event.model_extra or {}).get("workflow_id")
        if event.event == "workflow" and event.at is not None and isinstance(wid, str):
            starts[wid] = min(starts.get(wid, event.at), event.at)

    def key(event: HistoryEvent) -> tuple[bool, datetime | None, datetime | None, int]:
        if event.at is None:
            return (True, None, None, RANK[event.event])
        wid = (event.model_extra or {}).get("workflow_id")
        if event.event == "journal_entry":
            wid = decider
        hint = event.at if event.event == "workflow" else starts.get(str(wid), event.at)
        return (False, event.at.replace(microsecond=0), hint, RANK[event.event])

    return sorted(events, key=key)


def _event(at: datetime | None, event: str, **details: Any) -> HistoryEvent:
    return HistoryEvent.model_validate({"at": at, "event": event, **details})


def _decided(order: OrderBody) -> HistoryEvent:
    return _event(
        order.decided_at,
        "decided",
        status=order.status,
        via=order.via,
        workflow_id=order.workflow_id,
        run_id=order.run_id,
        account_id=order.account_id,
        amount=order.amount,
        balance_after=order.balance_after,
    )


def _carried(item: CarriedItem) -> HistoryEvent:
    return _event(
        item.batch.created_at,
        "batch",
        batch_id=item.batch.batch_id,
        kind=item.batch.kind,
        seq=item.seq,
        status=item.status,
        outcome=item.outcome,
        exit_code=item.exit_code,
        detail=item.detail,
        workflow_id=item.batch.workflow_id,
        batch=batch_body(item.batch).model_dump(mode="json"),
    )


def _journaled(entry: Entry) -> HistoryEvent:
    return _event(
        entry.at,
        "journal_entry",
        entry_id=entry.entry_id,
        account_id=entry.account_id,
        kind=entry.kind,
        amount=entry.amount,
        balance_after=entry.balance_after,
    )


def _workflow(
    workflow_id: str, run: WorkflowExecution | WorkflowExecutionDescription
) -> HistoryEvent:
    return _event(
        run.start_time,
        "workflow",
        workflow_id=workflow_id,
        run_id=run.run_id,
        workflow_type=run.workflow_type,
        status=run.status.name.lower() if run.status else None,
        closed_at=run.close_time,
    )


async def _listed(client: Client, own_ids: list[str]) -> dict[str, list[WorkflowExecution]]:
    """Every run of the order's own workflows, by workflow ID, as visibility lists them."""
    quoted = ", ".join(f"'{workflow_id}'" for workflow_id in own_ids)
    found: dict[str, list[WorkflowExecution]] = {}
    runs = client.list_workflows(f"WorkflowId IN ({quoted})", rpc_timeout=TEMPORAL_TIMEOUT)
    async for run in runs:
        found.setdefault(run.id, []).append(run)
    return found


async def _described(client: Client, workflow_id: str) -> WorkflowExecutionDescription | None:
    """The latest run of ``workflow_id``, read from its history (visibility may lag)."""
    try:
        return await client.get_workflow_handle(workflow_id).describe(rpc_timeout=TEMPORAL_TIMEOUT)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def workflow_events(
    client: Client, own_ids: list[str], batch_ids: Iterable[str]
) -> list[HistoryEvent]:
    """The order's workflows (every run) and the latest run of each batch's workflow."""
    listed = await _listed(client, own_ids)
    events = [_workflow(wid, run) for wid, runs in listed.items() for run in runs]
    unlisted = [wid for wid in own_ids if wid not in listed]
    wanted = [*unlisted, *dict.fromkeys(batch_ids)]
    described = await asyncio.gather(*(_described(client, wid) for wid in wanted))
    events += [_workflow(wid, run) for wid, run in zip(wanted, described, strict=True) if run]
    return events


async def order_history(ledger: Ledger, client: Client, order_id: str) -> HistoryBody | None:
    """Everything known of ``order_id``, oldest first; None when nothing is."""
    outcome = await ledger.get_fee_outcome(order_id)
    order = None if outcome is None else OrderBody.of(outcome)
    carried = await batches_of_order(ledger, order_id)
    entries = await entries_of_order(ledger, order_id)
    runs = await runs_of_order(ledger, order_id)
    events = [_carried(item) for item in carried] + [_journaled(entry) for entry in entries]
    if order is not None:
        events.append(_decided(order))
    for row, result in runs:
        details = {"script": row.script, "status": row.status, "workflow_id": row.workflow_id}
        if result is not None:
            details |= result.model_dump(exclude={"order_id"})
        events.append(_event(utc(row.created_at), "script_run", **details))
    own_ids = [
        fee_workflow_id(order_id),
        *(script_workflow_id(row.script, order_id) for row, _ in runs),
    ]
    temporal = "ok"
    try:
        async with asyncio.timeout(2 * TEMPORAL_TIMEOUT.total_seconds()):
            batch_wfs = [item.batch.workflow_id for item in carried]
            events += await workflow_events(client, own_ids, batch_wfs)
    except Exception:  # Temporal down, unreachable or slow: the records still answer.
        temporal = "unavailable"
    if not events:
        return None
    return HistoryBody(
        order_id=order_id,
        outcome=order,
        charges=sum(1 for entry in entries if entry.amount < 0),
        refunds=[],
        events=_in_story_order(events, None if order is None else order.workflow_id),
        temporal=temporal,
    )
