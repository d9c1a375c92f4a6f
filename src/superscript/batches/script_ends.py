"""Storing how a script chunk's keys ended: a group at a time, one transaction each.

A group's transaction stores each key's result (the first stored result of a key is
final, so an item reports what the ledger holds) together with its batch item and the
batch's counters.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from superscript.batches.models import Counts, ItemDone
from superscript.batches.recording import record_ends
from superscript.ledger import Ledger
from superscript.scripts.chunk_claims import stored_results
from superscript.scripts.models import ScriptRunResult
from superscript.scripts.records import decide_results
from superscript.testing_hooks import failpoint

log = logging.getLogger(__name__)

# Tries to claim a group, or to store its ends, before the chunk gives up (and Temporal
# retries it).
TRIES = 20
BACKOFF_MOST = 5.0


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
                    if tries >= TRIES:
                        raise
                    log.warning(
                        "could not store %d ends yet", len(runs) + len(items), exc_info=True
                    )
                await asyncio.sleep(delay)
                delay = min(delay * 2, BACKOFF_MOST)

    async def _store(
        self, runs: Sequence[tuple[int, ScriptRunResult]], items: Sequence[ItemDone]
    ) -> Counts:
        if not runs and not items:
            return Counts()
        async with self.ledger.write() as conn:
            await decide_results(conn, [result for _, result in runs])
            # The first stored result is final: the item reports what the ledger holds.
            stored = await stored_results(conn, self.script, [r.order_id for _, r in runs])
            ends = [*items, *(ran_item(seq, stored.get(r.order_id, r)) for seq, r in runs)]
            return await record_ends(conn, self.batch_id, ends)


def ran_item(seq: int, result: ScriptRunResult) -> ItemDone:
    return ItemDone(
        seq=seq,
        status="succeeded" if result.status == "succeeded" else "failed",
        outcome=result.status,
        exit_code=result.exit_code,
        detail=result.reason,
    )


def replayed_item(seq: int, result: ScriptRunResult) -> ItemDone:
    return ItemDone(seq=seq, status="replayed", outcome=result.status, exit_code=result.exit_code)
