"""Applying a chunk of fee items: the ledger's orders and the items' ends in one transaction.

Both happen in one ledger transaction (``Ledger.in_fee_transaction``): an item is marked
decided exactly when its order's outcome commits, and a retried chunk finds its items
decided (and the ledger its orders), so nothing is charged twice.

The chunk is decided in memory (``ledger.bulk``, the ledger's own rules on plain rows) and
written with a handful of statements on the driver's connection (``chunk_sqlite``,
``chunk_postgres``): per-row SQLAlchemy parameters and pydantic models cost about three
times what the database spends on the rows.
"""

from __future__ import annotations

from superscript.batches import chunk_postgres, chunk_sqlite
from superscript.batches.models import Counts
from superscript.ledger import Decider, FeeTransaction, Ledger


async def apply_fee_chunk(
    ledger: Ledger, batch_id: str, start: int, end: int, decider: Decider
) -> Counts:
    """Apply the still-pending items ``start..end`` in one transaction.

    Items already decided (by an earlier attempt of this very activity) are skipped, and
    every order is applied through the ledger's unique key, so a retry changes nothing.
    """
    apply = chunk_sqlite.apply_chunk if ledger.is_sqlite else chunk_postgres.apply_chunk

    async def chunk(fees: FeeTransaction) -> Counts:
        return await apply(fees.conn, batch_id, start, end, decider)

    return await ledger.in_fee_transaction(
        decider, chunk, what=f"batch {batch_id!r} items {start}..{end}"
    )
