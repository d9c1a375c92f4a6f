"""A chunk of a script batch run in one activity: the default orchestrator of script batches.

The seed's orchestrator starts a ``SinglePaymentCollectionWorkflow`` per key, bound by the
Temporal server's pace (about ten a second). Here one activity runs a chunk's keys itself,
with the single-run path's per-key guarantees, kept by the ledger rather than by a
workflow per key (see ``superscript.scripts.chunk_claims``):

- a key and its attempt are claimed only once a slot is held for it: the chunk waits for
  one of the worker's ``slots``, takes every other one free at that moment (up to
  ``group``), claims that many keys and ``LOOKAHEAD`` more in one transaction and starts
  each granted run in its slot (the few ahead wait for the next free slots, so that no
  slot is idle during a claim's transaction; the slots of claims that are no run are
  given back). A lost worker therefore leaves claimed only its runs in flight (they may
  have run, so they count as started: at most ``max_attempts`` starts, ever), the few
  claimed ahead and the keys of a claim between its commit and their spawn; every key
  not claimed yet is run by the retried chunk;
- the scripts run through ``run_script``, at most ``slots`` at once on the worker;
- every end is stored (the key's result and the batch item, one transaction per group);
- a key someone else runs (the API, another batch or chunk) is waited for, never started.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from temporalio import activity
from temporalio.exceptions import ApplicationError

from superscript.batches.models import Counts, ItemDone
from superscript.batches.reading import get_batch, pending_items
from superscript.batches.recording import record_items
from superscript.batches.schema import batch_items
from superscript.batches.script_ends import BACKOFF_MOST, TRIES, Ends, ran_item, replayed_item
from superscript.batches.script_slots import LOOKAHEAD, Slot, take_slots
from superscript.batches.script_waits import Key, WaitFor, mismatch_item
from superscript.ledger import Ledger
from superscript.scripts.activities import WORKER_SHUTDOWN, failed_outcome, outcome_of_run
from superscript.scripts.chunk_claims import KeyClaim, claim_group
from superscript.scripts.models import ScriptOutcome, run_result
from superscript.scripts.records import AttemptStarter, ScriptRuns
from superscript.scripts.registry import Registry, ScriptNotFound, ScriptSpec
from superscript.scripts.runner import run_script
from superscript.scripts.workflows import RETRY_INITIAL_INTERVAL, RETRY_MAXIMUM_INTERVAL

log = logging.getLogger(__name__)

# How many waits on keys that someone else runs a chunk has at once.
WAITS_AT_ONCE = 32


@dataclass(frozen=True)
class ChunkPlace:
    """What a chunk activity runs with: the worker's ledger, registry, slots and data dir."""

    ledger: Ledger
    registry: Registry
    runs: ScriptRuns
    slots: asyncio.Semaphore
    data_dir: Path
    # Ends stored per transaction, and the most keys claimed in one (a claim takes only
    # as many keys as the chunk holds free slots for).
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
    # Repeats of a key earlier in the chunk, replayed with its outcome once it has one.
    repeats: list[Key] = field(default_factory=list)
    # Runs claimed ahead of a free slot and still waiting for one (at most ``LOOKAHEAD``).
    ahead: int = 0

    async def run(self, keys: Sequence[Key], group: int, wait: WaitFor) -> Counts:
        """Run the chunk's own keys, store every end, then wait for the others'.

        Keys are claimed as slots come free (``_claim_some``), at most ``LOOKAHEAD`` ahead.

        A worker shutting down starts no more keys: the runs in flight finish and are
        stored, and the chunk is handed back (``WORKER_SHUTDOWN``, retryable) so that its
        retry, on another worker, carries on with what is left.
        """
        firsts, repeats = _split_repeats(keys)
        self.repeats.extend(repeats)
        todo = deque(firsts)
        try:
            async with asyncio.TaskGroup() as tasks:
                while todo and not activity.is_worker_shutdown():
                    await self._claim_some(tasks, todo, group)
        finally:
            # Ended runs are stored even when the chunk stops (a worker shutting down).
            await asyncio.shield(self.ends.flush())
        if activity.is_worker_shutdown():
            raise ApplicationError(
                "the worker is shutting down: the chunk's runs in flight were finished and "
                "stored, the rest goes to another worker",
                type=WORKER_SHUTDOWN,
            )
        waiting = asyncio.Semaphore(WAITS_AT_ONCE)
        async with asyncio.TaskGroup() as tasks:
            for key in self.waits:
                tasks.create_task(self._waited(key, wait, waiting, repeat=False))
            for key in self.repeats:
                tasks.create_task(self._waited(key, wait, waiting, repeat=True))
        await self.ends.flush()
        return self.ends.counts

    async def _claim_some(self, tasks: asyncio.TaskGroup, todo: deque[Key], group: int) -> None:
        """Claim as many of the next keys as there are slots for now, and start their runs.

        At least one slot is waited for; the others are those free at that moment, and
        only ``LOOKAHEAD`` claimed keys ever wait for a slot (a killed worker leaves them
        counted as started though their scripts never ran). A slot whose claim is no run
        is given back.
        """
        held = await take_slots(self.slots, min(group, len(todo)))
        try:
            if activity.is_worker_shutdown():
                return
            extra = max(0, min(LOOKAHEAD - self.ahead, len(todo) - held))
            part = [todo.popleft() for _ in range(held + extra)]
            by_order = {key.order_id: key for key in part}
            for claim in await self._claim(part):
                if claim.kind == "run" and held:
                    held -= 1  # the run's task holds that slot now
                    self._start(tasks, by_order[claim.order_id], claim, Slot(self.slots))
                elif claim.kind == "run":
                    self.ahead += 1  # waits for the next slot, ahead of this loop
                    self._start(
                        tasks, by_order[claim.order_id], claim, Slot(self.slots, held=False)
                    )
                else:
                    self._end(by_order[claim.order_id], claim)
        finally:
            for _ in range(held):
                self.slots.release()

    async def _claim(self, part: Sequence[Key]) -> list[KeyClaim]:
        """The group's claims; a failed transaction claimed nothing, so it is tried again
        (the scripts already running go on meanwhile)."""
        keys = [(key.order_id, key.args) for key in part]
        delay = 0.1
        for tries in itertools.count(1):
            try:
                async with self.ledger.write() as conn:
                    return await claim_group(
                        conn, self.spec.name, keys, self.spec.max_attempts, self.starter
                    )
            except Exception:
                if tries >= TRIES:
                    raise
                log.warning("could not claim %d keys yet", len(keys), exc_info=True)
            await asyncio.sleep(delay)
            delay = min(delay * 2, BACKOFF_MOST)
        raise AssertionError("unreachable")

    def _start(self, tasks: asyncio.TaskGroup, key: Key, claim: KeyClaim, slot: Slot) -> None:
        """Start a granted attempt in its slot (held, or the next one free)."""
        assert claim.attempt is not None
        run = tasks.create_task(self._run_key(key, claim.attempt, slot))
        # Given back however the task ends, also if it is cancelled before it starts.
        run.add_done_callback(lambda _: slot.give_back())

    def _end(self, key: Key, claim: KeyClaim) -> None:
        """Note the end of a claim that is no run (or wait for the key's run elsewhere)."""
        if claim.kind == "decided":
            assert claim.result is not None
            self.ends.ended(replayed_item(key.seq, claim.result))
        elif claim.kind == "refused":
            assert claim.result is not None
            self.ends.ended(ran_item(key.seq, claim.result))
        elif claim.kind == "mismatch":
            self.ends.ended(mismatch_item(key, self.spec.name))
        else:
            self.waits.append(key)

    async def _run_key(self, key: Key, attempt: int, slot: Slot) -> None:
        """The key's attempts (its header's ``max_attempts``), each claimed in the ledger
        only once its slot is held, so a claimed attempt starts at once."""
        if not slot.held:
            try:
                await slot.take_again()
            finally:
                self.ahead -= 1
        while True:
            outcome = await self._attempt(key, attempt)
            slot.give_back()
            if outcome.status == "succeeded" or attempt >= self.spec.max_attempts:
                break
            await asyncio.sleep(_backoff(attempt))
            await slot.take_again()
            claim = await self.runs.claim_attempt(
                self.spec.name, key.order_id, key.args, self.spec.max_attempts, self.starter
            )
            if claim.result is not None:
                slot.give_back()
                await self.ends.ran(key.seq, claim.result)
                return
            assert claim.attempt is not None
            attempt = claim.attempt
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

    async def _waited(
        self, key: Key, wait: WaitFor, waiting: asyncio.Semaphore, *, repeat: bool
    ) -> None:
        async with waiting:
            self.ends.ended(await wait.item(self.spec, key, repeat=repeat))


def _split_repeats(keys: Iterable[Key]) -> tuple[list[Key], list[Key]]:
    """Each order's first item, and the repeats (replayed once the first has ended)."""
    seen: set[str] = set()
    firsts: list[Key] = []
    repeats: list[Key] = []
    for key in keys:
        (repeats if key.order_id in seen else firsts).append(key)
        seen.add(key.order_id)
    return firsts, repeats


def _backoff(attempt: int) -> float:
    """The single-run workflow's retry policy: 1 s, doubling, at most 30 s."""
    first = RETRY_INITIAL_INTERVAL.total_seconds()
    return float(min(first * 2 ** (attempt - 1), RETRY_MAXIMUM_INTERVAL.total_seconds()))
