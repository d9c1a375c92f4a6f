"""A CSV body read as it arrives: the same records, lines and digest however it is cut.

Pure: no server, no database. The records of a body fed in pieces of every size must be
those the CLI reads from the whole file (the same line numbers), and a batch taken in from
CSV must have the digest of the same items sent as JSON (so the two are one batch).
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from typing import Any

import pytest

from superscript.api.schemas import FeeBatchRequest, ScriptBatchRequest
from superscript.batches.csv_intake import take_csv
from superscript.batches.csv_rows import CsvError, rows_for
from superscript.batches.csv_stream import RecordSplitter, records
from superscript.batches.storing import items_digest
from superscript.cli.csv_file import _records, parse_csv

TRICKY = (
    b"\xef\xbb\xbforder_id,arg1,arg2\r\n"
    b'o-1,"a, b","multi\nline ""quoted"""\r\n'
    b"\r\n"
    b'o-2,,"x"\n'
    b"o-3,plain,\xc3\xa9t\xc3\xa9\n"
    b'o-4,"""",last'
)


async def _pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _streamed(data: bytes, size: int) -> list[tuple[int, list[str]]]:
    return [record async for record in records(_pieces(data, size), RecordSplitter())]


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 10_000])
async def test_records_are_the_whole_files_however_the_body_is_cut(size: int) -> None:
    whole = list(_records(TRICKY.decode("utf-8-sig")))
    assert await _streamed(TRICKY, size) == whole
    assert [line for line, _row in whole] == [1, 2, 5, 6, 7]


async def test_malformed_csv_names_its_line() -> None:
    with pytest.raises(CsvError) as raised:
        await _streamed(b'order_id,a\no-1,"x"y\n', 3)
    assert raised.value.line == 2


def _fee_csv(items: list[dict[str, Any]]) -> bytes:
    lines = ["order_id,account_id,amount"]
    lines += [f"{i['order_id']},{i['account_id']},{i['amount']}" for i in items]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.parametrize("size", [1, 100, 1 << 16])
async def test_a_csv_batch_has_the_digest_of_the_same_json_batch(size: int) -> None:
    items = [
        {"order_id": f"o-{n}", "account_id": f"acc-{n % 3}", "amount": n + 1} for n in range(12_345)
    ]
    items.append(items[7])  # a repeat is an item like any other
    request = FeeBatchRequest.model_validate({"batch_id": "b", "kind": "fee", "items": items})
    staged = await take_csv(_pieces(_fee_csv(items), size), rows_for(None), io.BytesIO())
    assert staged.total == len(items)
    assert staged.digest == items_digest("fee", None, request.items)
    stored = [cells for chunk in staged.chunks() for cells in chunk]
    assert stored == [(i["order_id"], i["account_id"], i["amount"], None) for i in items]


async def test_a_script_csv_batch_has_the_digest_of_the_same_json_batch() -> None:
    data = b'order_id,amount,note\no-1,10,"caf\xc3\xa9, ok"\no-2,,x\n'
    items = [
        {"order_id": "o-1", "args": ["10", "café, ok"]},
        {"order_id": "o-2", "args": ["", "x"]},
    ]
    request = ScriptBatchRequest.model_validate(
        {"batch_id": "b", "kind": "script", "script": "pay", "items": items}
    )
    staged = await take_csv(_pieces(data, 4), rows_for("pay"), io.BytesIO())
    assert staged.digest == items_digest("script", "pay", request.items)
    stored = [cells for chunk in staged.chunks() for cells in chunk]
    assert stored == [
        ("o-1", None, None, '["10", "caf\\u00e9, ok"]'),
        ("o-2", None, None, '["", "x"]'),
    ]
    # The CLI reads the same items from the same file.
    assert parse_csv(data, "pay").items == items


async def test_every_bad_line_is_named_and_nothing_is_staged() -> None:
    data = b"order_id,account_id,amount\no-1,a,1\no 2,a,1\no-3,a,-4\no-4,a,1,extra\no-5,a,5\n"
    staging = io.BytesIO()
    with pytest.raises(CsvError) as raised:
        await take_csv(_pieces(data, 5), rows_for(None), staging)
    assert [bad.line for bad in raised.value.problems] == [3, 4, 5]
    assert staging.getvalue() == b""


async def test_more_than_a_hundred_bad_lines_stop_the_reading() -> None:
    data = b"order_id,account_id,amount\n" + b"bad id,a,1\n" * 500
    with pytest.raises(CsvError) as raised:
        await take_csv(_pieces(data, 64), rows_for(None), io.BytesIO())
    assert len(raised.value.problems) == 100
    assert str(raised.value).startswith("more than 100 bad lines")
