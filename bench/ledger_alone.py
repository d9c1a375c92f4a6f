"""(e) and (e'): the ledger, and the batch store, applying fee chunks with no HTTP or Temporal.

Both run in the bench process, with the batch workflow's chunk size and window: (e) is the
physical limit for fee batches, (e') what a batch's own bookkeeping adds to it.
"""

from __future__ import annotations

import time

from bench.report import Report, Row, at_least, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from bench.workload import bounded, order
from superscript.batches.client import FEE_CHUNK_SIZE, WINDOW
from superscript.batches.models import BatchItem
from superscript.batches.store import BatchStore
from superscript.ledger import Decider, FeeOrder


async def measure_ledger(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(e) Ledger.apply_fees on fresh orders, FEE_CHUNK_SIZE per call, WINDOW calls at once."""
    ledger = stack.the_ledger()
    orders = [order(stack, "e", i) for i in range(sizes.batch)]
    chunks = [orders[i : i + FEE_CHUNK_SIZE] for i in range(0, len(orders), FEE_CHUNK_SIZE)]
    decider = Decider(workflow_id=f"bench-ledger-{stack.run_id}")
    await ledger.apply_fees([order(stack, "e-warm", i) for i in range(sizes.warmup)], decider)
    async with stack.cpu(report, "e"):
        started = time.perf_counter()
        applied = await bounded(
            len(chunks), WINDOW, lambda i: ledger.apply_fees(chunks[i], decider)
        )
        elapsed = time.perf_counter() - started
    charged = sum(
        1 for part in applied for one in part if one.applied and one.outcome.status == "charged"
    )
    rate = sizes.batch / elapsed
    report.figures["e"] = {
        "orders": sizes.batch,
        "seconds": elapsed,
        "orders_per_s": rate,
        "chunk_size": FEE_CHUNK_SIZE,
        "chunks_in_flight": WINDOW,
        "charged": charged,
    }
    share = ratio(report.value("d"), rate)
    note = None if charged == sizes.batch else f"only {charged} charged"
    report.add(
        Row(
            "e",
            "(e) ledger alone, same orders, no Temporal",
            rate,
            "orders/s",
            "(d)/(e)",
            share,
            ">= 0.5",
            at_least(share, 0.5),
            note,
        )
    )
    await measure_batch_store(stack, sizes, report)


async def measure_batch_store(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(e') Info, to split (d): the batch store's own work, no HTTP and no Temporal.

    ``BatchStore.create`` (what POST /batches stores) and ``apply_fee_chunk`` over the same
    chunks with the same window as the batch workflow, called directly.
    """
    store = BatchStore(stack.the_ledger())
    batch_id = f"{stack.run_id}-store-e"
    items: list[BatchItem] = [
        FeeOrder(order_id=fee.order_id, account_id=fee.account_id, amount=fee.amount)
        for fee in (order(stack, "es", i) for i in range(sizes.batch))
    ]
    bounds = [
        (start, min(start + FEE_CHUNK_SIZE, sizes.batch))
        for start in range(0, sizes.batch, FEE_CHUNK_SIZE)
    ]
    decider = Decider(workflow_id=f"bench-store-{stack.run_id}")
    async with stack.cpu(report, "e_store"):
        started = time.perf_counter()
        await store.create(batch_id, "fee", None, items)
        created = time.perf_counter()
        counts = await bounded(
            len(bounds),
            WINDOW,
            lambda i: store.apply_fee_chunk(batch_id, bounds[i][0], bounds[i][1], decider),
        )
        applied = time.perf_counter()
    succeeded = sum(part.succeeded for part in counts)
    chunk_rate = sizes.batch / (applied - created)
    report.figures["e_store"] = {
        "orders": sizes.batch,
        "create_seconds": created - started,
        "chunks_seconds": applied - created,
        "chunks_orders_per_s": chunk_rate,
        "orders_per_s": sizes.batch / (applied - started),
        "succeeded": succeeded,
    }
    note = f"create {created - started:.2f}s + chunks {applied - created:.2f}s"
    if succeeded != sizes.batch:
        note += f"; succeeded {succeeded} of {sizes.batch}"
    report.add(
        Row(
            "e_store",
            "(e') info: batch store alone (create + chunks), no HTTP/Temporal",
            sizes.batch / (applied - started),
            "orders/s",
            "(d)/(e')",
            ratio(report.value("d"), sizes.batch / (applied - started)),
            note=note,
        )
    )
