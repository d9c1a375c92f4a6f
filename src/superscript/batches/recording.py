"""Recording how items ended: their rows and the batch's counters, in the caller's transaction.

Only items still pending change, so recording the same ends twice counts them once (a
retried activity, a chunk whose bounds moved between attempts).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from superscript.batches.models import Batch, Counts, ItemDone
from superscript.batches.reading import get_batch
from superscript.batches.schema import batch_items, batches
from superscript.db.metadata import IN_LIST_SIZE
from superscript.ledger import Ledger

# What an item's row says once it ended: status, outcome, exit code, detail.
_End = tuple[str, str | None, int | None, str | None]


async def record_items(ledger: Ledger, batch_id: str, done: Sequence[ItemDone]) -> Counts:
    """Record ``done`` in a transaction of its own (script items: nothing else to commit)."""
    async with ledger.write() as conn:
        return await record_ends(conn, batch_id, done)


async def complete_batch(ledger: Ledger, batch_id: str) -> Batch:
    async with ledger.write() as conn:
        await conn.execute(
            update(batches)
            .where(batches.c.batch_id == batch_id, batches.c.status == "running")
            .values(status="completed", completed_at=func.now())
        )
    batch = await get_batch(ledger, batch_id)
    assert batch is not None
    return batch


async def record_ends(
    conn: AsyncConnection,
    batch_id: str,
    ends: Sequence[ItemDone],
    *,
    pending_span: tuple[int, int] | None = None,
) -> Counts:
    """Mark items decided and move the batch's counters, in the caller's transaction.

    ``pending_span``: ``ends`` are all the items of ``start..end`` that the caller read
    as pending in this very transaction.
    """
    if not ends:
        return Counts()
    fresh = list(ends) if pending_span is not None else await _still_pending(conn, batch_id, ends)
    if not fresh:
        return Counts()
    await _mark_items(conn, batch_id, fresh, pending_span)
    tally = Counter(end.status for end in fresh)
    counts = Counts(
        succeeded=tally["succeeded"], replayed=tally["replayed"], failed=tally["failed"]
    )
    await _count(conn, batch_id, counts)
    return counts


async def _mark_items(
    conn: AsyncConnection,
    batch_id: str,
    ends: Sequence[ItemDone],
    pending_span: tuple[int, int] | None,
) -> None:
    """Items that ended alike (a whole chunk charged, say) change in one statement."""
    alike: defaultdict[_End, list[int]] = defaultdict(list)
    for end in ends:
        alike[end.status, end.outcome, end.exit_code, end.detail].append(end.seq)
    # In a span read as pending, what is still pending once the others are marked is
    # exactly the largest group: one range update, instead of a key lookup per item.
    last = max(alike, key=lambda key: len(alike[key])) if pending_span is not None else None
    single: list[dict[str, object]] = []
    for ended, seqs in alike.items():
        if ended == last:
            continue
        if len(seqs) == 1:
            single.append(_single_params(seqs[0], ended))
        else:
            await _mark_seqs(conn, batch_id, seqs, ended)
    if single:
        await conn.execute(
            update(batch_items)
            .where(batch_items.c.batch_id == batch_id, batch_items.c.seq == bindparam("b_seq"))
            .values(
                status=bindparam("b_status"),
                outcome=bindparam("b_outcome"),
                exit_code=bindparam("b_exit_code"),
                detail=bindparam("b_detail"),
            ),
            single,
        )
    if pending_span is not None and last is not None:
        await conn.execute(
            update(batch_items)
            .where(
                batch_items.c.batch_id == batch_id,
                batch_items.c.seq >= pending_span[0],
                batch_items.c.seq < pending_span[1],
                batch_items.c.status == "pending",
            )
            .values(_values(last))
        )


def _values(end: _End) -> dict[str, object]:
    status, outcome, exit_code, detail = end
    return {"status": status, "outcome": outcome, "exit_code": exit_code, "detail": detail}


def _single_params(seq: int, end: _End) -> dict[str, object]:
    status, outcome, exit_code, detail = end
    return {
        "b_seq": seq,
        "b_status": status,
        "b_outcome": outcome,
        "b_exit_code": exit_code,
        "b_detail": detail,
    }


async def _mark_seqs(conn: AsyncConnection, batch_id: str, seqs: list[int], end: _End) -> None:
    for part in range(0, len(seqs), IN_LIST_SIZE):
        await conn.execute(
            update(batch_items)
            .where(
                batch_items.c.batch_id == batch_id,
                batch_items.c.seq.in_(seqs[part : part + IN_LIST_SIZE]),
            )
            .values(_values(end))
        )


async def _count(conn: AsyncConnection, batch_id: str, counts: Counts) -> None:
    """Move the batch's counters; the last items decided complete the batch at once."""
    await conn.execute(
        update(batches)
        .where(batches.c.batch_id == batch_id)
        .values(
            succeeded=batches.c.succeeded + counts.succeeded,
            replayed=batches.c.replayed + counts.replayed,
            failed=batches.c.failed + counts.failed,
        )
    )
    # Readers see the batch done without waiting for the workflow's closing step (which
    # then finds nothing to change).
    await conn.execute(
        update(batches)
        .where(
            batches.c.batch_id == batch_id,
            batches.c.status == "running",
            batches.c.succeeded + batches.c.replayed + batches.c.failed >= batches.c.total,
        )
        .values(status="completed", completed_at=func.now())
    )


async def _still_pending(
    conn: AsyncConnection, batch_id: str, ends: Sequence[ItemDone]
) -> list[ItemDone]:
    pending: set[int] = set()
    seqs = [end.seq for end in ends]
    for part in range(0, len(seqs), IN_LIST_SIZE):
        rows = await conn.execute(
            select(batch_items.c.seq).where(
                batch_items.c.batch_id == batch_id,
                batch_items.c.seq.in_(seqs[part : part + IN_LIST_SIZE]),
                batch_items.c.status == "pending",
            )
        )
        pending.update(rows.scalars())
    return [end for end in ends if end.seq in pending]
