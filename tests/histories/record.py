"""Record the Temporal histories that ``tests/test_replay.py`` replays.

Run from the repository root::

    .venv/bin/python -m tests.histories.record

It starts a real dev server (as ``tests/conftest.py`` does), a worker of the current
workflows and activities, a SQLite ledger and the HTTP API in a temporary directory, plays
each scenario through the API as a user would, checks that each ended as the scenario
intends (a scenario that ends otherwise is an error, nothing is written), fetches the
history of every run involved and writes them here with ``index.json``, which names each
file's workflow ID, run ID, workflow type and scenario. The histories written by an earlier
run are replaced; ``legacy/`` is never touched (see README.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from superscript.batches import client as batch_client
from superscript.devserver import sqlite_pragma_args, temporal_binary
from superscript.fees.models import fee_workflow_id
from superscript.ledger import Ledger
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.conftest import Api, serve_app

HERE = Path(__file__).resolve().parent
INDEX = "index.json"
TASK_QUEUE = "record-histories"

# The fee batch's plan: small enough that seven items take several runs of the workflow.
CHAIN_CHUNK_SIZE = 2
CHAIN_WINDOW = 2
CHAIN_MAX_HISTORY_EVENTS = 10


class ScenarioError(Exception):
    """A scenario did not end as it should: the histories would not show what they claim."""


@dataclass(frozen=True)
class Entry:
    """One recorded run, as ``index.json`` lists it."""

    file: str
    scenario: str
    workflow_type: str
    workflow_id: str
    run_id: str


@dataclass(frozen=True)
class Recorded:
    run_id: str
    history: WorkflowHistory


@dataclass(frozen=True)
class Run:
    scenario: str
    file: str
    workflow_id: str
    run_id: str | None = None


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise ScenarioError(message)


async def post(api: Api, path: str, body: dict[str, Any], status: int) -> dict[str, Any]:
    response = await api.http.post(path, json=body)
    expect(
        response.status_code == status,
        f"POST {path}: {response.status_code} {response.text}, wanted {status}",
    )
    answer: dict[str, Any] = response.json()
    return answer


async def fees(api: Api) -> list[Run]:
    """A fee charged, and a fee declined for want of funds."""
    await post(api, "/accounts", {"account_id": "rec-acct", "balance": 1_000}, 201)
    charged = await post(
        api, "/orders/rec-fee-charged/fee", {"account_id": "rec-acct", "amount": 100}, 200
    )
    expect(charged["status"] == "charged", f"fee-charged: {charged}")
    declined = await post(
        api, "/orders/rec-fee-declined/fee", {"account_id": "rec-acct", "amount": 5_000}, 402
    )
    expect(declined.get("code") == "insufficient_funds", f"fee-declined: {declined}")
    return [
        Run("fee-charged", "fee-charged.json", fee_workflow_id("rec-fee-charged")),
        Run("fee-declined", "fee-declined.json", fee_workflow_id("rec-fee-declined")),
    ]


async def script_runs(api: Api) -> list[Run]:
    """A script run that succeeds and one whose script exits non-zero."""
    ok = await post(
        api, "/scripts/collect-payment/runs", {"order_id": "rec-run-ok", "args": ["100"]}, 200
    )
    expect(ok["status"] == "succeeded", f"script-succeeded: {ok}")
    failed = await post(
        api, "/scripts/fail-payment/runs", {"order_id": "rec-run-failed", "args": []}, 200
    )
    expect(failed["status"] == "failed" and failed["exit_code"] == 3, f"script-failed: {failed}")
    return [
        Run("script-succeeded", "script-succeeded.json", ok["workflow_id"], ok["run_id"]),
        Run("script-failed", "script-failed.json", failed["workflow_id"], failed["run_id"]),
    ]


async def batch_done(api: Api, client: Client, accepted: dict[str, Any]) -> dict[str, Any]:
    """Wait for the batch's workflow (following continue-as-new), then read the batch."""
    batch_id = accepted["batch_id"]
    await client.get_workflow_handle(accepted["workflow_id"]).result()
    response = await api.http.get(f"/batches/{batch_id}")
    expect(response.status_code == 200, f"GET /batches/{batch_id}: {response.text}")
    body: dict[str, Any] = response.json()
    return body


async def script_batch(api: Api, client: Client) -> list[Run]:
    """A script batch of the seed's orchestrator (``children``) with the default plan: a
    child per new key, one key already run."""
    items = [
        {"order_id": "rec-batch-1", "args": ["10"]},
        {"order_id": "rec-batch-2", "args": ["20"]},
        {"order_id": "rec-run-ok", "args": ["100"]},  # run by script_runs: replayed
    ]
    body = {"batch_id": "rec-script", "kind": "script", "script": "collect-payment"}
    accepted = await post(
        api, "/batches", {**body, "items": items, "orchestrator": "children"}, 202
    )
    done = await batch_done(api, client, accepted)
    expect(
        (done["status"], done["succeeded"], done["replayed"]) == ("completed", 2, 1),
        f"script-batch: {done}",
    )
    return [Run("script-batch", "script-batch.json", accepted["workflow_id"])]


async def script_batch_chunks(api: Api, client: Client) -> list[Run]:
    """A script batch of the default orchestrator (``chunks``): one chunk activity runs
    the new keys; a key already run and a repeat are replayed."""
    items = [
        {"order_id": "rec-chunk-1", "args": ["10"]},
        {"order_id": "rec-chunk-2", "args": ["20"]},
        {"order_id": "rec-run-ok", "args": ["100"]},  # run by script_runs: replayed
        {"order_id": "rec-chunk-1", "args": ["10"]},  # a repeat: replayed
    ]
    body = {"batch_id": "rec-script-chunks", "kind": "script", "script": "collect-payment"}
    accepted = await post(api, "/batches", {**body, "items": items}, 202)
    done = await batch_done(api, client, accepted)
    expect(
        (done["status"], done["succeeded"], done["replayed"]) == ("completed", 2, 2),
        f"script-batch-chunks: {done}",
    )
    return [Run("script-batch-chunks", "script-batch-chunks.json", accepted["workflow_id"])]


@contextlib.contextmanager
def small_batch_plan() -> Iterator[None]:
    """New batches start with the chain's small plan (the starter's defaults, changed)."""
    names = {
        "FEE_CHUNK_SIZE": CHAIN_CHUNK_SIZE,
        "WINDOW": CHAIN_WINDOW,
        "MAX_HISTORY_EVENTS": CHAIN_MAX_HISTORY_EVENTS,
    }
    saved = {name: getattr(batch_client, name) for name in names}
    for name, value in names.items():
        setattr(batch_client, name, value)
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(batch_client, name, value)


async def fee_batch(api: Api, client: Client) -> list[Run]:
    """A fee batch whose workflow continues as new: charges, a replay and a decline."""
    await post(api, "/accounts", {"account_id": "rec-batch-acct", "balance": 100}, 201)
    items = [
        {"order_id": f"rec-fee-batch-{n}", "account_id": "rec-batch-acct", "amount": 10}
        for n in range(1, 7)
    ]
    items.append({"order_id": "rec-fee-charged", "account_id": "rec-acct", "amount": 100})
    items.append({"order_id": "rec-fee-too-big", "account_id": "rec-batch-acct", "amount": 99})
    body = {"batch_id": "rec-fee", "kind": "fee", "items": items}
    with small_batch_plan():
        accepted = await post(api, "/batches", body, 202)
    done = await batch_done(api, client, accepted)
    expect(
        (done["status"], done["succeeded"], done["replayed"], done["failed"])
        == ("completed", 6, 1, 1),
        f"fee-batch: {done}",
    )
    return [Run("fee-batch", "fee-batch.json", accepted["workflow_id"])]


async def history(client: Client, workflow_id: str, run_id: str | None) -> Recorded:
    """One run's history (the latest run's when ``run_id`` is None), with its run ID."""
    handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    if run_id is None:
        run_id = (await handle.describe()).run_id
        handle = client.get_workflow_handle(workflow_id, run_id=run_id)
    return Recorded(run_id, await handle.fetch_history())


def started(hist: WorkflowHistory) -> Any:
    return hist.events[0].workflow_execution_started_event_attributes


async def chain(client: Client, run: Run) -> list[Recorded]:
    """Every run of the workflow ID, first to last: the start event names the one before."""
    runs = [await history(client, run.workflow_id, run.run_id)]
    while previous := started(runs[0].history).continued_execution_run_id:
        runs.insert(0, await history(client, run.workflow_id, previous))
    return runs


def children(hist: WorkflowHistory) -> list[tuple[str, str]]:
    """(workflow ID, run ID) of each child the run started, in the order it asked for them."""
    started_runs = {
        attrs.initiated_event_id: attrs.workflow_execution.run_id
        for event in hist.events
        if event.event_type == EventType.EVENT_TYPE_CHILD_WORKFLOW_EXECUTION_STARTED
        for attrs in [event.child_workflow_execution_started_event_attributes]
    }
    return [
        (event.start_child_workflow_execution_initiated_event_attributes.workflow_id, run_id)
        for event in hist.events
        if event.event_type == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED
        for run_id in [started_runs.get(event.event_id)]
        if run_id is not None
    ]


def continued_as_new(hist: WorkflowHistory) -> bool:
    return hist.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


async def collect(client: Client, runs: list[Run]) -> list[tuple[Entry, WorkflowHistory]]:
    """The history of each run, every run of a chain, and each child's, with its entry."""
    out: list[tuple[Entry, WorkflowHistory]] = []

    def add(scenario: str, file: str, got: Recorded) -> None:
        hist = got.history
        kind = started(hist).workflow_type.name
        out.append((Entry(file, scenario, kind, hist.workflow_id, got.run_id), hist))

    for run in runs:
        runs_of_id = await chain(client, run)
        hists = [got.history for got in runs_of_id]
        stem = run.file.removesuffix(".json")
        for n, got in enumerate(runs_of_id, start=1):
            name = stem if len(runs_of_id) == 1 else f"{stem}.run-{n}"
            add(run.scenario, f"{name}.json", got)
            for k, (child_id, child_run) in enumerate(children(got.history), start=1):
                add(
                    run.scenario,
                    f"{name}.child-{k}.json",
                    await history(client, child_id, child_run),
                )
        if run.scenario == "fee-batch":
            expect(len(hists) >= 2, f"fee-batch: {len(hists)} run(s), no continue-as-new")
            expect(all(continued_as_new(h) for h in hists[:-1]), "fee-batch: chain broken")
        if run.scenario == "script-batch":
            expect(len(children(hists[0])) == 2, "script-batch: not two children")
        if run.scenario == "script-batch-chunks":
            expect(not children(hists[0]), "script-batch-chunks: started child workflows")
    return out


@contextlib.asynccontextmanager
async def stack(tmp: Path) -> AsyncIterator[tuple[Api, Client]]:
    """Dev server, worker, ledger and API, all in ``tmp`` and all stopped on the way out."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        dev_server_database_filename=str(tmp / "temporal.db"),
        dev_server_extra_args=sqlite_pragma_args(),
        data_converter=pydantic_data_converter,
    )
    try:
        settings = Settings(
            data_dir=tmp / "data",
            database_url=f"sqlite:///{tmp / 'ledger.db'}",
            task_queue=TASK_QUEUE,
            naive_delay=(0.0, 0.0),
        )
        ledger = await Ledger.open(settings.database_url)
        try:
            worker = build_worker(env.client, ledger, settings)
            async with worker, serve_app(settings, ledger, env.client) as api:
                yield api, env.client
        finally:
            await ledger.close()
    finally:
        await env.shutdown()


async def record(out: Path) -> list[Entry]:
    with tempfile.TemporaryDirectory(prefix="superscript-histories-") as tmp:
        async with stack(Path(tmp)) as (api, client):
            runs = [
                *await fees(api),
                *await script_runs(api),
                *await script_batch(api, client),
                *await script_batch_chunks(api, client),
                *await fee_batch(api, client),
            ]
            recorded = await collect(client, runs)
    write(out, recorded)
    return [entry for entry, _ in recorded]


def write(out: Path, recorded: list[tuple[Entry, WorkflowHistory]]) -> None:
    """Replace the histories of the last recording (only those ``index.json`` listed)."""
    out.mkdir(parents=True, exist_ok=True)
    index = out / INDEX
    if index.exists():
        for old in json.loads(index.read_text()):
            (out / old["file"]).unlink(missing_ok=True)
    for entry, hist in recorded:
        text = json.dumps(hist.to_json_dict(), indent=2, sort_keys=True)
        (out / entry.file).write_text(text + "\n")
    entries = [asdict(entry) for entry, _ in recorded]
    index.write_text(json.dumps(entries, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="where to write (default: here)")
    args = parser.parse_args(argv)
    try:
        entries = asyncio.run(record(args.out))
    except ScenarioError as exc:
        print(f"not recorded: {exc}", file=sys.stderr)
        return 1
    for entry in entries:
        print(f"{entry.file}: {entry.workflow_type} {entry.workflow_id} ({entry.scenario})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
