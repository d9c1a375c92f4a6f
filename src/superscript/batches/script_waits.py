"""Keys of a script chunk that someone else runs: waited for, as the API's callers wait.

A chunk never starts a key another caller holds (the API, another batch or chunk); it
waits for that run's record, and takes over only a pending key that nothing runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from superscript.batches.models import ItemDone
from superscript.batches.script_ends import ran_item, replayed_item
from superscript.ledger import IdempotencyKeyReused
from superscript.scripts.client import (
    RunUndecided,
    await_script_run,
    recorded_run,
    runs_in_batch,
    script_handle,
)
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import ScriptSpec

# How long one wait on a key that someone else runs lasts before it is asked again.
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class Key:
    """One pending item of the chunk."""

    seq: int
    order_id: str
    args: list[str]


@dataclass(frozen=True)
class WaitFor:
    """Waiting for a key that someone else runs, as the API's callers wait for it."""

    client: Client
    runs: ScriptRuns
    task_queue: str

    async def item(self, spec: ScriptSpec, key: Key, *, repeat: bool) -> ItemDone:
        """The item's end once the key's run is decided: ``replayed`` with its outcome.

        Except a pending key that nothing runs (its workflow never started, or is gone):
        the wait starts the key's own workflow, so the run is this batch's (``succeeded``
        or ``failed``), as the seed's child, which would have started it, reports it.
        """
        taken_over = not repeat and await self._nobody_runs(spec.name, key.order_id)
        try:
            result = await await_script_run(
                self.client,
                self.runs,
                spec,
                key.order_id,
                key.args,
                task_queue=self.task_queue,
                wait_seconds=WAIT_SECONDS,
            )
        except IdempotencyKeyReused:
            return mismatch_item(key, spec.name)
        except RunUndecided as exc:
            return ItemDone(seq=key.seq, status="replayed", outcome="failed", detail=exc.detail)
        return ran_item(key.seq, result) if taken_over else replayed_item(key.seq, result)

    async def _nobody_runs(self, script: str, order_id: str) -> bool:
        """Whether the key is pending and no workflow (nor batch) holds its run."""
        record = await self.runs.get(script, order_id)
        if record is None or record.result is not None:
            return False
        if await runs_in_batch(self.client, record):
            return False
        handle = await recorded_run(self.client, record) or script_handle(
            self.client, script, order_id
        )
        try:
            await handle.describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return True
            raise
        return False


def mismatch_item(key: Key, script: str) -> ItemDone:
    error = IdempotencyKeyReused(
        f"order {key.order_id!r} already has a run of script {script!r} with other args; "
        "nothing was run"
    )
    return ItemDone(seq=key.seq, status="failed", outcome=error.code, detail=error.detail)
