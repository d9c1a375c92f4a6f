"""The batch store's fast paths give exactly what the plain ones did, on both databases."""

from __future__ import annotations

import asyncio
import hashlib
import json

from hypothesis import given
from hypothesis import strategies as st

from superscript.batches.models import BatchItem, ItemDone, ScriptItem
from superscript.batches.store import BatchStore
from superscript.batches.storing import _item_json, items_digest
from superscript.ledger import Decider, FeeOrder, Ledger
from tests.conftest import unique

ids = st.one_of(
    st.from_regex(r"[A-Za-z0-9._:-]{1,40}", fullmatch=True),
    # Anything else goes through json.dumps: quotes, escapes, non-ASCII, controls.
    st.text(min_size=0, max_size=20),
)


@given(order_id=ids, account_id=ids, amount=st.integers(-(2**63), 2**63 - 1))
def test_fee_item_text_is_json_dumps_byte_for_byte(
    order_id: str, account_id: str, amount: int
) -> None:
    """Stored digests stay valid: the same items must keep giving the same fingerprint."""
    item = FeeOrder(order_id=order_id, account_id=account_id, amount=amount)
    assert _item_json(item) == json.dumps(item.model_dump(), separators=(",", ":"))


def test_digest_is_the_documented_fingerprint() -> None:
    items: list[BatchItem] = [
        FeeOrder(order_id=f"o-{i}", account_id="acc-1", amount=i + 1) for i in range(25_001)
    ]
    expected = hashlib.sha256(b"fee\n\n")
    for item in items:
        expected.update(json.dumps(item.model_dump(), separators=(",", ":")).encode() + b"\n")
    assert items_digest("fee", None, items) == expected.hexdigest()
    changed = [*items[:-1], FeeOrder(order_id="o-25000", account_id="acc-1", amount=1)]
    assert items_digest("fee", None, changed) != expected.hexdigest()


async def test_chunk_records_each_items_own_outcome(ledger: Ledger) -> None:
    """Items that ended alike change together; each still gets its own detail."""
    rich, poor_a, poor_b, ghost = unique("rich"), unique("poor"), unique("poor"), unique("ghost")
    await ledger.create_account(rich, 1_000)
    await ledger.create_account(poor_a, 3)
    await ledger.create_account(poor_b, 4)
    repeat = unique("order")
    items = [
        FeeOrder(order_id=unique("order"), account_id=rich, amount=10),
        FeeOrder(order_id=repeat, account_id=rich, amount=5),
        FeeOrder(order_id=unique("order"), account_id=poor_a, amount=50),
        FeeOrder(order_id=unique("order"), account_id=poor_b, amount=50),
        FeeOrder(order_id=unique("order"), account_id=poor_b, amount=50),
        FeeOrder(order_id=repeat, account_id=rich, amount=5),
        FeeOrder(order_id=unique("order"), account_id=ghost, amount=1),
        FeeOrder(order_id=unique("order"), account_id=rich, amount=20),
        FeeOrder(order_id=unique("order"), account_id=ghost, amount=2),
    ]
    store = BatchStore(ledger)
    batch_id = unique("batch")
    await store.create(batch_id, "fee", None, list(items))
    counts = await store.apply_fee_chunk(batch_id, 0, len(items), Decider(workflow_id="wf"))
    assert (counts.succeeded, counts.replayed, counts.failed) == (3, 1, 5)

    stored = await store.items(batch_id, None, 100, None)
    assert [(i.seq, i.status, i.outcome) for i in stored] == [
        (0, "succeeded", "charged"),
        (1, "succeeded", "charged"),
        (2, "failed", "insufficient_funds"),
        (3, "failed", "insufficient_funds"),
        (4, "failed", "insufficient_funds"),
        (5, "replayed", "charged"),
        (6, "failed", "account_not_found"),
        (7, "succeeded", "charged"),
        (8, "failed", "account_not_found"),
    ]
    details = [i.detail for i in stored]
    assert details[0] is None and details[1] is None and details[7] is None
    # Each failure's detail names its own account and order.
    for seq, account_id in ((2, poor_a), (3, poor_b), (4, poor_b)):
        detail = details[seq] or ""
        assert account_id in detail and items[seq].order_id in detail, detail
    assert details[6] == details[8]
    assert (details[6] or "").startswith(f"account {ghost!r} did not exist when the order was")
    batch = await store.get(batch_id)
    assert batch is not None
    assert (batch.succeeded, batch.replayed, batch.failed, batch.pending) == (3, 1, 5, 0)
    assert (await ledger.get_account(rich)).balance == 1_000 - 35


async def test_recording_the_same_ends_twice_counts_them_once(ledger: Ledger) -> None:
    store = BatchStore(ledger)
    batch_id = unique("batch")
    items: list[BatchItem] = [ScriptItem(order_id=unique("order"), args=[str(i)]) for i in range(4)]
    await store.create(batch_id, "script", "collect", items)
    ends = [
        ItemDone(seq=0, status="succeeded", outcome="succeeded", exit_code=0),
        ItemDone(seq=1, status="succeeded", outcome="succeeded", exit_code=0),
        ItemDone(seq=2, status="failed", outcome="failed", exit_code=3, detail="exit 3"),
    ]
    first = await store.record_items(batch_id, ends)
    again = await store.record_items(
        batch_id, [*ends, ItemDone(seq=3, status="replayed", outcome="succeeded")]
    )
    assert (first.succeeded, first.replayed, first.failed) == (2, 0, 1)
    assert (again.succeeded, again.replayed, again.failed) == (0, 1, 0)
    stored = await store.items(batch_id, None, 10, None)
    assert [(i.status, i.exit_code, i.detail) for i in stored] == [
        ("succeeded", 0, None),
        ("succeeded", 0, None),
        ("failed", 3, "exit 3"),
        ("replayed", None, None),
    ]


async def test_concurrent_writers_of_one_process_all_commit(ledger: Ledger) -> None:
    """On SQLite the process's writers queue on one lock; none times out or is lost."""
    account_id = unique("acc")
    await ledger.create_account(account_id, 10_000)
    store = BatchStore(ledger)
    batch_id = unique("batch")
    items: list[BatchItem] = [
        FeeOrder(order_id=unique("order"), account_id=account_id, amount=1) for _ in range(400)
    ]
    await store.create(batch_id, "fee", None, items)
    decider = Decider(workflow_id="wf")
    barrier = asyncio.Barrier(20)

    async def chunk(start: int) -> int:
        await barrier.wait()
        counts = await store.apply_fee_chunk(batch_id, start, start + 20, decider)
        return counts.succeeded

    succeeded = await asyncio.gather(*(chunk(start) for start in range(0, 400, 20)))
    assert sum(succeeded) == 400
    assert (await ledger.get_account(account_id)).balance == 10_000 - 400


async def test_chunk_over_partly_decided_items_changes_only_the_pending(ledger: Ledger) -> None:
    """Chunk bounds may differ between attempts (a new chunk size mid-batch)."""
    rich, poor = unique("rich"), unique("poor")
    await ledger.create_account(rich, 1_000)
    await ledger.create_account(poor, 0)
    items: list[BatchItem] = [
        FeeOrder(order_id=unique("order"), account_id=poor if i == 1 else rich, amount=10)
        for i in range(8)
    ]
    store = BatchStore(ledger)
    batch_id = unique("batch")
    await store.create(batch_id, "fee", None, items)
    decider = Decider(workflow_id="wf")

    first = await store.apply_fee_chunk(batch_id, 0, 3, decider)
    midway = await store.get(batch_id)
    second = await store.apply_fee_chunk(batch_id, 0, 8, decider)
    # The last decided item completes the batch, before the workflow's closing step.
    done = await store.get(batch_id)
    assert midway is not None and (midway.status, midway.pending) == ("running", 5)
    assert done is not None and (done.status, done.pending) == ("completed", 0)

    assert (first.succeeded, first.failed) == (2, 1)
    assert (second.succeeded, second.replayed, second.failed) == (5, 0, 0)
    stored = await store.items(batch_id, None, 10, None)
    assert [i.status for i in stored] == ["succeeded", "failed", *["succeeded"] * 6]
    assert stored[1].outcome == "insufficient_funds" and stored[1].detail
    assert (await ledger.get_account(rich)).balance == 1_000 - 70
