"""A chunk of a script batch run in one activity: the default orchestrator of script batches.

The seed's orchestrator starts a ``SinglePaymentCollectionWorkflow`` per key, bound by the
Temporal server's pace (about ten a second). Here one activity runs a chunk's keys itself,
with the single-run path's per-key guarantees, kept by the ledger rather than by a
workflow per key (see ``superscript.scripts.chunk_claims``):

- keys and their attempts are claimed in groups, each in one transaction, right before
  their scripts start, so a lost worker leaves at most a group or two claimed but not
  started (those count as started: at most ``max_attempts`` starts, ever);
- the scripts run through ``run_script``, at most ``slots`` at once on the worker;
- every end is stored (the key's result and the batch item, one transaction per group);
- a key someone else runs (the API, another batch or chunk) is waited for, never started.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporalio.client import Client

from superscript.batches.models import Counts, ItemDone
from superscript.batches.reading import get_batch, pending_items
from superscript.batches.recording import record_ends, record_items
from superscript.batches.schema import batch_items
from superscript.ledger import IdempotencyKeyReused, Ledger
from superscript.scripts.activities import failed_outcome, outcome_of_run
from superscript.scripts.chunk_claims import KeyClaim, claim_group, decide_results, stored_results
from superscript.scripts.client import RunUndecided, await_script_run
from superscript.scripts.models import ScriptOutcome, ScriptRunResult, run_result
from superscript.scripts.records import AttemptStarter, ScriptRuns
from superscript.scripts.registry import Registry, ScriptNotFound, ScriptSpec
from superscript.scripts.runner import run_script
from superscript.scripts.workflows import RETRY_INITIAL_INTERVAL, RETRY_MAXIMUM_INTERVAL
from superscript.testing_hooks import failpoint

log = logging.getLogger(__name__)

# Tries to store a group's ends before the chunk gives up (and Temporal retries it).
RECORD_TRIES = 20
RECORD_BACKOFF_MOST = 5.0
# How long one wait on a key that someone else runs lasts before it is asked again.
WAIT_SECONDS = 30.0


@dataclass(frozen=True)
class ChunkPlace:
    """What a chunk activity runs with: the worker's ledger, registry, slots and data dir."""

    ledger: Ledger
    registry: Registry
    runs: ScriptRuns
    slots: asyncio.Semaphore
    data_dir: Path
    # Keys claimed (and their ends stored) per transaction.
    group: int


async def run_script_chunk(
    place: ChunkPlace, batch_id: str, start: int, end: int, starter: AttemptStarter, wait: WaitFor
) -> Counts:
    """Run the pending items ``start..end`` of script batch ``batch_id``; their counts.

    A script removed since the batch was accepted fails every item, and nothing runs.
    """
    batch = await get_batch(place.ledger, batch_id)
    assert batch is not None and batch.script is not None
    async with place.ledger.engine.connect() as conn:
        rows = await pending_items(
            conn, batch_id, start, end, batch_items.c.order_id, batch_items.c.args
        )
    keys = [Key(seq, order_id, json.loads(args)) for seq, order_id, args in rows]
    try:
        spec = place.registry.get(batch.script)
    except ScriptNotFound as exc:
        unknown = [
            ItemDone(seq=key.seq, status="failed", outcome=exc.code, detail=str(exc))
            for key in keys
        ]
        return await record_items(place.ledger, batch_id, unknown)
    ends = Ends(place.ledger, batch_id, spec.name, place.group)
    chunk = ChunkRun(
        place.ledger, place.runs, spec, starter, place.slots, place.data_dir.resolve(), ends
    )
    return await chunk.run(keys, place.group, wait)


@dataclass(frozen=True)
class Key:
    """One pending item of the chunk."""

    seq: int
    order_id: str
    args: list[str]


@dataclass
class Ends:
    """The chunk's ends not stored yet, stored a group at a time (one transaction each)."""

    ledger: Ledger
    batch_id: str
    script: str
    group: int
    runs: list[tuple[int, ScriptRunResult]] = field(default_factory=list)
    items: list[ItemDone] = field(default_factory=list)
    counts: Counts = field(default_factory=Counts)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def ran(self, seq: int, result: ScriptRunResult) -> None:
        self.runs.append((seq, result))
        if len(self.runs) + len(self.items) >= self.group:
            await self.flush()

    def ended(self, item: ItemDone) -> None:
        self.items.append(item)

    async def flush(self) -> None:
        """Store what ended, retrying database faults (nothing runs again meanwhile)."""
        async with self.lock:
            runs, items = self.runs, self.items
            self.runs, self.items = [], []
            if runs:
                await failpoint("script-chunk-before-record")
            delay = 0.1
            for tries in itertools.count(1):
                try:
                    self.counts = self.counts.plus(await self._store(runs, items))
                    return
                except Exception:
                    if tries >= RECORD_TRIES:
                        raise
                    log.warning(
                        "could not store %d ends yet", len(runs) + len(items), exc_info=True
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECORD_BACKOFF_MOST)

    async def _store(
        self, runs: Sequence[tuple[int, ScriptRunResult]], items: Sequence[ItemDone]
    ) -> Counts:
        if not runs and not items:
            return Counts()
        async with self.ledger.write() as conn:
            await decide_results(conn, [result for _, result in runs])
            # The first stored result is final: the item reports what the ledger holds.
            stored = await stored_results(conn, self.script, [r.order_id for _, r in runs])
            ends = [*items, *(_ran(seq, stored.get(r.order_id, r)) for seq, r in runs)]
            return await record_ends(conn, self.batch_id, ends)


def _ran(seq: int, result: ScriptRunResult) -> ItemDone:
    return ItemDone(
        seq=seq,
        status="succeeded" if result.status == "succeeded" else "failed",
        outcome=result.status,
        exit_code=result.exit_code,
        detail=result.reason,
    )


def _replayed(seq: int, result: ScriptRunResult) -> ItemDone:
    return ItemDone(seq=seq, status="replayed", outcome=result.status, exit_code=result.exit_code)


@dataclass
class ChunkRun:
    """One chunk activity's work: the keys of ``batch_id`` from ``start`` to ``end``."""

    ledger: Ledger
    runs: ScriptRuns
    spec: ScriptSpec
    starter: AttemptStarter
    slots: asyncio.Semaphore
    data_dir: Path
    ends: Ends
    # Waits on keys that someone else runs: (seq, order_id, args).
    waits: list[Key] = field(default_factory=list)

    async def run(self, keys: Sequence[Key], group: int, wait: WaitFor) -> Counts:
        """Run the chunk's own keys, store every end, then wait for the others'."""
        firsts, repeats = _split_repeats(keys)
        self.waits.extend(repeats)
        try:
            async with asyncio.TaskGroup() as tasks:
                for part in _groups(firsts, group):
                    for key, claim in zip(part, await self._claim(part), strict=True):
                        await self._start(tasks, key, claim)
        finally:
            # Ended runs are stored even when the chunk stops (a worker shutting down).
            await asyncio.shield(self.ends.flush())
        async with asyncio.TaskGroup() as tasks:
            for key in self.waits:
                tasks.create_task(self._waited(key, wait))
        await self.ends.flush()
        return self.ends.counts

    async def _claim(self, part: Sequence[Key]) -> list[KeyClaim]:
        async with self.ledger.write() as conn:
            return await claim_group(
                conn,
                self.spec.name,
                [(key.order_id, key.args) for key in part],
                self.spec.max_attempts,
                self.starter,
            )

    async def _start(self, tasks: asyncio.TaskGroup, key: Key, claim: KeyClaim) -> None:
        """Start a granted attempt in a free slot; note every other claim's end."""
        if claim.kind == "run":
            assert claim.attempt is not None
            await self.slots.acquire()  # claimed keys start in order, never piling up
            tasks.create_task(self._run_key(key, claim.attempt))
        elif claim.kind == "decided":
            assert claim.result is not None
            self.ends.ended(_replayed(key.seq, claim.result))
        elif claim.kind == "refused":
            assert claim.result is not None
            self.ends.ended(_ran(key.seq, claim.result))
        elif claim.kind == "mismatch":
            self.ends.ended(_mismatch(key, self.spec.name))
        else:
            self.waits.append(key)

    async def _run_key(self, key: Key, attempt: int) -> None:
        """The key's attempts (its header's ``max_attempts``), each claimed in the ledger."""
        held = True
        try:
            while True:
                outcome = await self._attempt(key, attempt)
                self.slots.release()
                held = False
                if outcome.status == "succeeded" or attempt >= self.spec.max_attempts:
                    break
                await asyncio.sleep(_backoff(attempt))
                claim = await self.runs.claim_attempt(
                    self.spec.name, key.order_id, key.args, self.spec.max_attempts, self.starter
                )
                if claim.result is not None:
                    await self.ends.ran(key.seq, claim.result)
                    return
                assert claim.attempt is not None
                attempt = claim.attempt
                await self.slots.acquire()
                held = True
        finally:
            if held:
                self.slots.release()
        result = run_result(
            self.spec.name, key.order_id, outcome, self.starter.workflow_id, self.starter.run_id
        )
        await self.ends.ran(key.seq, result)

    async def _attempt(self, key: Key, attempt: int) -> ScriptOutcome:
        try:
            run = await run_script(
                self.spec,
                list(key.args),
                order_id=key.order_id,
                attempt=attempt,
                extra_env={"SUPERSCRIPT_DATA_DIR": str(self.data_dir)},
            )
        except OSError as exc:
            return failed_outcome(attempt, f"the script could not be started: {exc}")
        return outcome_of_run(run, attempt)

    async def _waited(self, key: Key, wait: WaitFor) -> None:
        self.ends.ended(await wait.item(self.spec, key))


@dataclass(frozen=True)
class WaitFor:
    """Waiting for a key that someone else runs, as the API's callers wait for it."""

    client: Client
    runs: ScriptRuns
    task_queue: str

    async def item(self, spec: ScriptSpec, key: Key) -> ItemDone:
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
            return _mismatch(key, spec.name)
        except RunUndecided as exc:
            return ItemDone(seq=key.seq, status="replayed", outcome="failed", detail=exc.detail)
        return _replayed(key.seq, result)


def _mismatch(key: Key, script: str) -> ItemDone:
    error = IdempotencyKeyReused(
        f"order {key.order_id!r} already has a run of script {script!r} with other args; "
        "nothing was run"
    )
    return ItemDone(seq=key.seq, status="failed", outcome=error.code, detail=error.detail)


def _split_repeats(keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
    """Each order's first item, and the repeats (replayed once the first has ended)."""
    seen: set[str] = set()
    firsts: list[Key] = []
    repeats: list[Key] = []
    for key in keys:
        (repeats if key.order_id in seen else firsts).append(key)
        seen.add(key.order_id)
    return firsts, repeats


def _groups(keys: Sequence[Key], size: int) -> Iterable[Sequence[Key]]:
    for start in range(0, len(keys), size):
        yield keys[start : start + size]


def _backoff(attempt: int) -> float:
    """The single-run workflow's retry policy: 1 s, doubling, at most 30 s."""
    first = RETRY_INITIAL_INTERVAL.total_seconds()
    return float(min(first * 2 ** (attempt - 1), RETRY_MAXIMUM_INTERVAL.total_seconds()))
