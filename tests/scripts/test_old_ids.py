"""Script run records stored under the old IDs (``SCRIPT-WF-{name}-{order_id}``, ambiguous):
each key still runs its own script, once, and a decided record keeps answering."""

from __future__ import annotations

import pytest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment

from superscript.batches.activities import BatchActivities
from superscript.batches.models import FetchRunInput
from superscript.batches.store import BatchStore
from superscript.ledger import Ledger
from superscript.scripts import Registry
from superscript.scripts.client import ScriptHandle, collection_input
from superscript.scripts.models import script_workflow_id
from superscript.scripts.records import ScriptRuns
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.settings import Settings
from superscript.worker import build_worker
from tests.conftest import Api, serve_app, unique
from tests.scripts.runs import post_run, run_path


def pay_lines(settings: Settings) -> list[str]:
    log = settings.data_dir / "pay.log"
    return log.read_text().splitlines() if log.exists() else []


def old_workflow_id(script: str, order_id: str) -> str:
    """The ID the code built before ``SCRIPT-WF-{name}/{order_id}``: ambiguous."""
    return f"SCRIPT-WF-{script}-{order_id}"


async def start_old_run(
    client: Client, settings: Settings, runs: ScriptRuns, script: str, order_id: str
) -> ScriptHandle:
    """What the old code did for a key: claim it under the old ID, start that workflow."""
    spec = Registry(settings.scripts_dir).get(script)
    workflow_id = old_workflow_id(script, order_id)
    await runs.claim(script, order_id, [], workflow_id)
    return await client.start_workflow(
        SinglePaymentCollectionWorkflow.run,
        collection_input(spec, order_id, []),
        id=workflow_id,
        task_queue=settings.task_queue,
    )


async def test_a_collided_old_id_runs_the_keys_own_script(api: Api, client: Client) -> None:
    """pay/x-{u} ran under SCRIPT-WF-pay-x-{u}; pay-x/{u}'s pending record names it too."""
    runs = ScriptRuns(api.ledger.engine)
    u = unique("o")
    old_id = old_workflow_id("pay", f"x-{u}")
    assert old_id == old_workflow_id("pay-x", u)
    paid = await (await start_old_run(client, api.settings, runs, "pay", f"x-{u}")).result()
    await runs.claim("pay-x", u, [], old_id)  # as the old code did: its run never began

    waiting = await api.http.get(f"{run_path('pay-x')}/{u}")
    response = await post_run(api, "pay-x", u, [])

    assert waiting.status_code == 202 and waiting.json()["workflow_id"] == f"SCRIPT-WF-pay-x/{u}"
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["script"], body["order_id"], body["status"]) == ("pay-x", u, "succeeded")
    assert body["workflow_id"] == f"SCRIPT-WF-pay-x/{u}" and body["stdout"] == "paid by pay-x\n"
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]
    assert (await api.http.get(f"{run_path('pay-x')}/{u}")).json() == body

    # The decided record under the old ID keeps answering from its stored result.
    assert paid.workflow_id == old_id
    for answer in (
        await post_run(api, "pay", f"x-{u}", []),
        await api.http.get(f"{run_path('pay')}/x-{u}"),
    ):
        assert answer.status_code == 200 and answer.json() == paid.model_dump()
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]


async def test_a_pending_old_id_record_joins_its_own_workflow(
    settings: Settings, ledger: Ledger, client: Client
) -> None:
    """The key's run started under the old ID and is still going: joined, never re-run."""
    runs = ScriptRuns(ledger.engine)
    order_id = f"x-{unique('o')}"
    old_id = old_workflow_id("pay", order_id)
    quick = settings.model_copy(update={"result_wait_seconds": 0.3})
    async with serve_app(quick, ledger, client) as api:
        # No worker yet: the old run is open when the new code is asked about the key.
        await start_old_run(client, settings, runs, "pay", order_id)
        posted = await post_run(api, "pay", order_id, [])
        fetched = await api.http.get(f"{run_path('pay')}/{order_id}")
        pending = {"order_id": order_id, "status": "pending", "workflow_id": old_id}
        assert posted.status_code == 202 and posted.json() == pending
        assert fetched.status_code == 202 and fetched.json() == pending

    async with build_worker(client, ledger, settings), serve_app(settings, ledger, client) as api:
        decided = await post_run(api, "pay", order_id, [])
        assert decided.status_code == 200, decided.text
        assert decided.json()["workflow_id"] == old_id
        assert (decided.json()["script"], decided.json()["order_id"]) == ("pay", order_id)
        assert pay_lines(settings) == [f"pay {order_id}"]
        with pytest.raises(RPCError) as missing:
            await client.get_workflow_handle(script_workflow_id("pay", order_id)).describe()
        assert missing.value.status == RPCStatusCode.NOT_FOUND


async def test_a_batch_follows_a_pending_old_id_record_to_its_workflow(
    api: Api, client: Client
) -> None:
    """``fetch_script_run`` waits on the workflow the record names, not on a new ID."""
    runs = ScriptRuns(api.ledger.engine)
    order_id = f"x-{unique('o')}"
    await start_old_run(client, api.settings, runs, "pay", order_id)
    activities = BatchActivities(
        BatchStore(api.ledger), Registry(api.settings.scripts_dir), runs, client
    )

    done = await ActivityEnvironment().run(
        activities.fetch_script_run, FetchRunInput(seq=0, script="pay", order_id=order_id)
    )

    assert (done.status, done.outcome, done.exit_code) == ("replayed", "succeeded", 0)
    assert pay_lines(api.settings) == [f"pay {order_id}"]


async def test_a_batch_runs_a_key_whose_old_id_another_key_holds(api: Api, client: Client) -> None:
    """pay-x/{u}'s pending record names SCRIPT-WF-pay-x-{u}, which pay/x-{u} ran: the batch
    runs pay-x/{u} under its own ID instead of waiting on the other key's run forever."""
    runs = ScriptRuns(api.ledger.engine)
    u = unique("o")
    old_id = old_workflow_id("pay-x", u)
    await (await start_old_run(client, api.settings, runs, "pay", f"x-{u}")).result()
    await runs.claim("pay-x", u, [], old_id)  # as the old code did: its run never began
    batch_id = unique("b")

    response = await api.http.post(
        "/batches",
        json={
            "batch_id": batch_id,
            "kind": "script",
            "script": "pay-x",
            "items": [{"order_id": u}],
        },
    )
    assert response.status_code == 202, response.text
    await client.get_workflow_handle(f"BATCH-WF-{batch_id}").result()

    status = (await api.http.get(f"/batches/{batch_id}")).json()
    assert (status["status"], status["succeeded"], status["failed"]) == ("completed", 1, 0)
    assert pay_lines(api.settings) == [f"pay x-{u}", f"pay-x {u}"]
    run = (await api.http.get(f"{run_path('pay-x')}/{u}")).json()
    assert (run["script"], run["order_id"], run["status"]) == ("pay-x", u, "succeeded")
    assert run["workflow_id"] == script_workflow_id("pay-x", u)
