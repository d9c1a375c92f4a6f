"""The streamed JSON batch reader: the items and digest of the whole-body route, however
the body is split, and a refusal (so the whole-body route answers) for anything else."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from pydantic import TypeAdapter

from superscript.api.schemas import ScriptItemIn
from superscript.batches.json_intake import GiveUp, JsonIntake, fee_item, script_item
from superscript.batches.models import ScriptItem
from superscript.batches.storing import items_digest
from superscript.ledger import FeeOrder

CHECKS = {"fee": fee_item, "script": script_item(TypeAdapter(ScriptItemIn).validate_python)}
FEES = [{"order_id": f"o-{i}", "account_id": f"a-{i % 3}", "amount": i + 1} for i in range(50)]


def take(body: bytes, size: int) -> tuple[JsonIntake, Any]:
    """Feed ``body`` in pieces of ``size`` bytes; the intake and its staged items."""
    staging = io.BytesIO()
    intake = JsonIntake(CHECKS, staging)
    for start in range(0, len(body), size):
        intake.feed(body[start : start + size])
    intake.feed(b"", final=True)
    return intake, intake.finish()


@pytest.mark.parametrize("size", [1, 2, 7, 64, 1 << 16])
@pytest.mark.parametrize("indent", [None, 2])
def test_fee_items_as_the_whole_body_route_sees_them(size: int, indent: int | None) -> None:
    body = json.dumps({"batch_id": "b-1", "kind": "fee", "items": FEES}, indent=indent)
    intake, staged = take(body.encode(), size)
    assert intake.envelope == {"batch_id": "b-1", "kind": "fee", "items": None}
    assert intake.first_item == FEES[0]
    assert staged.total == len(FEES)
    assert staged.digest == items_digest("fee", None, [FeeOrder(**item) for item in FEES])
    cells = [cell for chunk in staged.chunks() for cell in chunk]
    assert cells == [(i["order_id"], i["account_id"], i["amount"], None) for i in FEES]


@pytest.mark.parametrize("size", [1, 5, 1 << 16])
def test_script_items_and_their_digest(size: int) -> None:
    items = [{"order_id": "o-1", "args": ["x", "é"]}, {"order_id": "o-2"}]
    body = json.dumps({"kind": "script", "script": "s", "batch_id": "b", "items": items})
    _intake, staged = take(body.encode(), size)
    expected = [ScriptItem(order_id="o-1", args=["x", "é"]), ScriptItem(order_id="o-2", args=[])]
    assert staged.digest == items_digest("script", "s", expected)
    cells = [cell for chunk in staged.chunks() for cell in chunk]
    assert cells == [("o-1", None, None, '["x", "\\u00e9"]'), ("o-2", None, None, "[]")]


def test_a_number_split_between_pieces_is_read_whole() -> None:
    intake = JsonIntake(CHECKS, io.BytesIO())
    intake.feed(
        b'{"kind":"fee","batch_id":"b","items":[{"order_id":"o","account_id":"a","amount":12'
    )
    intake.feed(b"3}]}")
    intake.feed(b"", final=True)
    staged = intake.finish()
    assert [cell for chunk in staged.chunks() for cell in chunk] == [("o", "a", 123, None)]


GOOD_ITEM = '{"order_id":"o","account_id":"a","amount":1}'


@pytest.mark.parametrize(
    "body",
    [
        f'{{"batch_id":"b","items":[{GOOD_ITEM}],"kind":"fee"}}',  # kind after the items
        '{"batch_id":"b","kind":"fee","items":[]}',
        f'{{"batch_id":"b","kind":"fee","items":[{GOOD_ITEM},]}}',
        f'{{"batch_id":"b","kind":"fee","items":[{GOOD_ITEM}]}} x',
        f'{{"batch_id":"b","kind":"fee","items":[{GOOD_ITEM}]',
        f'{{"batch_id":"b","batch_id":"c","kind":"fee","items":[{GOOD_ITEM}]}}',
        '{"kind":"fee","items":[{"order_id":"o","account_id":"a","amount":1.0}]}',
        '{"kind":"fee","items":[{"order_id":"o","account_id":"a","amount":true}]}',
        '{"kind":"fee","items":[{"order_id":"o","account_id":"a","amount":0}]}',
        '{"kind":"fee","items":[{"order_id":"o","account_id":"a","amount":1,"x":1}]}',
        '{"kind":"fee","items":[{"order_id":"o o","account_id":"a","amount":1}]}',
        '{"kind":"script","items":[{"order_id":"o"}],"script":"s"}',
        '{"kind":"script","script":"s","items":[{"order_id":"o","args":[1]}]}',
        '{"kind":"refund","items":[]}',
        "[1]",
        "",
    ],
)
def test_anything_else_is_left_to_the_whole_body_route(body: str) -> None:
    intake = JsonIntake(CHECKS, io.BytesIO())
    with pytest.raises(GiveUp):
        intake.feed(body.encode())
        intake.feed(b"", final=True)


def test_text_that_is_not_utf8_is_left_to_the_whole_body_route() -> None:
    intake = JsonIntake(CHECKS, io.BytesIO())
    with pytest.raises(GiveUp):
        intake.feed(b'{"batch_id":"\xff"}')
        intake.feed(b"", final=True)
