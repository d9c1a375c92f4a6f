"""Workflow IDs and idempotency keys: one function per kind, no two business keys share one.

With ``SCRIPT-WF-{name}-{order_id}``, script ``pay`` with order ``x-1`` and script ``pay-x``
with order ``1`` had one workflow: the second run never happened. The contract's IDs put
``/`` (outside the identifier alphabet) between the parts, and each kind has a prefix that
starts no other kind's.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from superscript.batches.models import batch_workflow_id
from superscript.contract import ID_CHARS, ID_MAX_LENGTH, is_identifier
from superscript.fees.models import fee_workflow_id, refund_workflow_id
from superscript.scripts.models import (
    compensation_workflow_id,
    script_idempotency_key,
    script_workflow_id,
)
from superscript.settings import Settings
from tests.conftest import Api, unique
from tests.script_files import write_script

# Appends its name, order and key to payments.log: each line is one start of a script.
RECORDING_SCRIPT = """#!/usr/bin/env bash
printf '%s %s %s\\n' "$SUPERSCRIPT_SCRIPT" "$SUPERSCRIPT_ORDER_ID" \\
  "$SUPERSCRIPT_IDEMPOTENCY_KEY" >>"$SUPERSCRIPT_DATA_DIR/payments.log"
"""

ALL_CHARS = string.ascii_letters + string.digits + "._:-"
assert re.fullmatch(rf"[{ID_CHARS}]+", ALL_CHARS)
# Short identifiers rich in '-' and '.' (where old IDs collided), and any up to the limit.
short_ids = st.text(alphabet=st.sampled_from("-.:_Aa0"), min_size=1, max_size=6)
identifiers = st.one_of(short_ids, st.text(alphabet=ALL_CHARS, min_size=1, max_size=ID_MAX_LENGTH))

PairId = Callable[[str, str], str]
PAIR_IDS: dict[str, PairId] = {
    "script_workflow_id": script_workflow_id,
    "compensation_workflow_id": compensation_workflow_id,
    "script_idempotency_key": script_idempotency_key,
}
SINGLE_IDS: dict[str, Callable[[str], str]] = {
    "fee_workflow_id": fee_workflow_id,
    "refund_workflow_id": refund_workflow_id,
    "batch_workflow_id": batch_workflow_id,
}
WORKFLOW_ID_KINDS = ("fee_workflow_id", "refund_workflow_id", "batch_workflow_id")
PAIR_KINDS = ("script_workflow_id", "compensation_workflow_id")


@st.composite
def pairs(draw: st.DrawFn) -> list[tuple[str, str]]:
    """(name, order_id) pairs, among them every split of one dashed text at its dashes."""
    segments = draw(st.lists(short_ids.filter(lambda s: "-" not in s), min_size=2, max_size=5))
    splits = [
        ("-".join(segments[:cut]), "-".join(segments[cut:])) for cut in range(1, len(segments))
    ]
    others = draw(st.lists(st.tuples(identifiers, identifiers), max_size=10))
    return list(dict.fromkeys([*splits, *others]))


def test_the_contract_ids() -> None:
    assert script_workflow_id("pay", "x-1") == "SCRIPT-WF-pay/x-1"
    assert script_workflow_id("pay-x", "1") == "SCRIPT-WF-pay-x/1"
    assert script_idempotency_key("pay", "x-1") == "pay/x-1"
    assert compensation_workflow_id("pay", "x-1") == "SCRIPT-COMP-WF-pay/x-1"
    assert fee_workflow_id("o-1") == "FEE-WF-o-1"
    assert refund_workflow_id("r-1") == "REFUND-WF-r-1"
    assert batch_workflow_id("b-1") == "BATCH-WF-b-1"


@given(pairs())
def test_distinct_name_and_order_pairs_never_share_an_id(found: list[tuple[str, str]]) -> None:
    assert all(is_identifier(name) and is_identifier(order) for name, order in found)
    for kind, make in PAIR_IDS.items():
        made = {make(name, order) for name, order in found}
        assert len(made) == len(found), (kind, found)


@given(st.lists(identifiers, unique=True, max_size=20))
def test_distinct_identifiers_never_share_an_id(values: list[str]) -> None:
    for kind, make in SINGLE_IDS.items():
        assert len({make(value) for value in values}) == len(values), kind


@given(
    st.dictionaries(
        st.sampled_from([*WORKFLOW_ID_KINDS, *PAIR_KINDS]),
        st.lists(st.tuples(identifiers, identifiers), min_size=1, max_size=5),
        min_size=2,
    )
)
def test_workflow_ids_of_different_kinds_never_collide(
    drawn: dict[str, list[tuple[str, str]]],
) -> None:
    """A fee order, a refund, a batch, a script run and a compensation each have their own
    IDs, whatever their identifiers (a batch named like an order is still a batch)."""
    owner: dict[str, str] = {}
    for kind, values in drawn.items():
        for first, second in values:
            made = SINGLE_IDS[kind](first) if kind in SINGLE_IDS else PAIR_IDS[kind](first, second)
            assert owner.setdefault(made, kind) == kind, (made, owner[made], kind)


def test_no_workflow_id_prefix_starts_another() -> None:
    """Prefix-free prefixes: an ID's kind is read from its start, never ambiguously."""
    samples = {
        "fee": fee_workflow_id(""),
        "refund": refund_workflow_id(""),
        "batch": batch_workflow_id(""),
        "script": script_workflow_id("", "").removesuffix("/"),
        "compensation": compensation_workflow_id("", "").removesuffix("/"),
    }
    for kind, prefix in samples.items():
        for other, other_prefix in samples.items():
            if kind != other:
                assert not other_prefix.startswith(prefix), (kind, other)


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    """conftest's settings with two scripts whose names differ by a dashed suffix."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    for name in ("pay", "pay-x"):
        write_script(scripts, f"{name}.sh", RECORDING_SCRIPT)
    return settings.model_copy(update={"scripts_dir": scripts})


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_runs_whose_old_ids_collided_both_run(api: Api) -> None:
    """``pay`` with order ``x-{o}`` and ``pay-x`` with ``{o}`` once shared one workflow."""
    base = unique("o")
    first = await api.http.post("/scripts/pay/runs", json={"order_id": f"x-{base}"})
    second = await api.http.post("/scripts/pay-x/runs", json={"order_id": base})

    assert first.status_code == second.status_code == 200, (first.text, second.text)
    assert first.json()["workflow_id"] == f"SCRIPT-WF-pay/x-{base}"
    assert second.json()["workflow_id"] == f"SCRIPT-WF-pay-x/{base}"
    assert first.json()["script"] == "pay" and second.json()["script"] == "pay-x"
    log = (api.settings.data_dir / "payments.log").read_text().splitlines()
    assert sorted(log) == sorted([f"pay x-{base} pay/x-{base}", f"pay-x {base} pay-x/{base}"])
