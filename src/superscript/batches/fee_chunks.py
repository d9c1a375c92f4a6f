"""Applying a chunk of fee items: the ledger applies the orders, the items record the ends.

Both happen in one ledger transaction (``Ledger.in_fee_transaction``): an item is marked
decided exactly when its order's outcome commits, and a retried chunk finds its items
decided (and the ledger its orders), so nothing is charged twice.
"""

from __future__ import annotations

from superscript.batches.models import Counts, EndStatus, ItemDone
from superscript.batches.reading import pending_items
from superscript.batches.recording import record_ends
from superscript.batches.schema import batch_items
from superscript.ledger import (
    Decider,
    FeeOrder,
    FeeResult,
    FeeTransaction,
    IdempotencyKeyReused,
    Ledger,
)


async def apply_fee_chunk(
    ledger: Ledger, batch_id: str, start: int, end: int, decider: Decider
) -> Counts:
    """Apply the still-pending items ``start..end`` in one transaction.

    Items already decided (by an earlier attempt of this very activity) are skipped, and
    every order is applied through the ledger's unique key, so a retry changes nothing.
    """

    async def chunk(fees: FeeTransaction) -> Counts:
        rows = await pending_items(
            fees.conn,
            batch_id,
            start,
            end,
            batch_items.c.order_id,
            batch_items.c.account_id,
            batch_items.c.amount,
        )
        orders = [
            FeeOrder(order_id=order_id, account_id=account_id, amount=amount)
            for _seq, order_id, account_id, amount in rows
        ]
        results = await fees.apply(orders)
        ends = [_item_end(row.seq, result) for row, result in zip(rows, results, strict=True)]
        # Read as pending in this very write transaction: every one of them still is.
        return await record_ends(fees.conn, batch_id, ends, pending_span=(start, end))

    return await ledger.in_fee_transaction(
        decider, chunk, what=f"batch {batch_id!r} items {start}..{end}"
    )


def _item_end(seq: int, result: FeeResult) -> ItemDone:
    """What one order's result means for its batch item."""
    if isinstance(result, IdempotencyKeyReused):
        return ItemDone(seq=seq, status="failed", outcome=result.code, detail=result.detail)
    outcome = result.outcome
    failure = outcome.failure
    status: EndStatus
    if not result.applied:
        status = "replayed"
    elif failure is None:
        status = "succeeded"
    else:
        status = "failed"
    return ItemDone(
        seq=seq,
        status=status,
        outcome=outcome.status,
        detail=None if failure is None else failure.detail,
    )
