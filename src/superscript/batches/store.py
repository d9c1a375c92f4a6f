"""``BatchStore``: one object for the batch routes and activities, over the modules that
do each job (``storing``, ``reading``, ``recording``, ``fee_chunks``).

Batches live in the ledger's database, so item outcomes commit with the money they move.
Script chunks are planned by ``batches.planning``, which is where batches meet scripts.
"""

from __future__ import annotations

from collections.abc import Sequence

from superscript.batches import fee_chunks, reading, recording, storing
from superscript.batches.models import (
    Batch,
    BatchItem,
    BatchItemView,
    BatchKind,
    Counts,
    ItemDone,
    ItemStatus,
)
from superscript.ledger import Decider, Ledger


class BatchStore:
    """Batches and their items in the ledger's database."""

    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    async def create(
        self, batch_id: str, kind: BatchKind, script: str | None, items: Sequence[BatchItem]
    ) -> tuple[Batch, bool]:
        """Store a new batch, or return the existing one (False) if the items are the same.

        Raises ``IdempotencyKeyReused`` when ``batch_id`` was used for other items.
        """
        return await storing.create_batch(self.ledger, batch_id, kind, script, items)

    async def create_staged(
        self, batch_id: str, kind: BatchKind, script: str | None, staged: storing.StagedItems
    ) -> tuple[Batch, bool]:
        """:meth:`create` of items staged outside memory (a CSV body, read as it came)."""
        return await storing.create_staged_batch(self.ledger, batch_id, kind, script, staged)

    async def get(self, batch_id: str) -> Batch | None:
        return await reading.get_batch(self.ledger, batch_id)

    async def items(
        self, batch_id: str, status: ItemStatus | None, limit: int, after: int | None
    ) -> list[BatchItemView]:
        """A page of items in order; ``after`` is the last ``seq`` of the previous page."""
        return await reading.item_page(self.ledger, batch_id, status, limit, after)

    async def record_items(self, batch_id: str, done: Sequence[ItemDone]) -> Counts:
        """Mark items decided; items no longer pending are left as they are."""
        return await recording.record_items(self.ledger, batch_id, done)

    async def complete(self, batch_id: str) -> Batch:
        return await recording.complete_batch(self.ledger, batch_id)

    async def apply_fee_chunk(
        self, batch_id: str, start: int, end: int, decider: Decider
    ) -> Counts:
        """Apply the still-pending fee items ``start..end`` in one ledger transaction."""
        return await fee_chunks.apply_fee_chunk(self.ledger, batch_id, start, end, decider)
