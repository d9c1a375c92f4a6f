"""The contract's rules, written once in ``superscript.contract``, agree with what states them.

The OpenAPI patterns and the pure checks are two spellings of one rule: these tests keep
them the same, and check that every part that validates input takes them from there.
"""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from superscript import contract
from superscript.api import limits
from superscript.api.app import create_app
from superscript.batches import csv_rows
from superscript.scripts import registry
from superscript.settings import BUNDLED_SCRIPTS_DIR, Settings


@given(st.text(max_size=200))
def test_the_identifier_pattern_and_check_agree(value: str) -> None:
    assert (re.fullmatch(contract.ID_PATTERN, value) is not None) == contract.is_identifier(value)


@given(st.text(alphabet="ab-./\x00", max_size=8))
def test_script_names_are_identifiers_that_name_a_file(name: str) -> None:
    assert contract.is_script_name(name) == (
        contract.is_identifier(name) and name not in (".", "..")
    )


@given(st.text(max_size=50))
def test_the_argument_pattern_and_check_agree(arg: str) -> None:
    """The pattern states the NUL rule; the check adds length and lone surrogates."""
    encodable = not any(0xD800 <= ord(char) <= 0xDFFF for char in arg)
    if encodable:
        matches = re.fullmatch(contract.ARG_PATTERN, arg) is not None
        assert matches == (contract.arg_problem(arg) is None)
    else:
        assert contract.arg_problem(arg) is not None


def test_argument_limits() -> None:
    assert contract.arg_problem("x" * contract.MAX_ARG_CHARS) is None
    assert contract.arg_problem("x" * (contract.MAX_ARG_CHARS + 1)) is not None
    assert contract.arg_problem("\ud800") is not None
    assert contract.args_problem([""] * contract.MAX_ARGS) is None
    assert contract.args_problem([""] * (contract.MAX_ARGS + 1)) is not None
    full = ["x" * 4096] * 16
    assert contract.args_problem(full) is None
    assert contract.args_problem([*full, "x"]) is not None


def test_money_bounds() -> None:
    assert contract.is_amount(1) and contract.is_amount(10**15)
    assert not contract.is_amount(0) and not contract.is_amount(10**15 + 1)
    assert contract.is_balance(0) and contract.is_balance(10**15)
    assert not contract.is_balance(-1) and not contract.is_balance(10**15 + 1)


def test_every_part_takes_its_rules_from_the_contract() -> None:
    assert limits.body_limit is contract.body_limit
    assert limits.BATCH_BODY_LIMIT == 160 * 1024 * 1024
    assert limits.DEFAULT_BODY_LIMIT == 1024 * 1024
    assert BUNDLED_SCRIPTS_DIR is contract.BUNDLED_SCRIPTS_DIR
    assert registry.BUNDLED_SCRIPTS_DIR is contract.BUNDLED_SCRIPTS_DIR
    assert registry.SCRIPT_NAME_PATTERN == contract.ID_PATTERN
    assert Settings().scripts_dir == contract.BUNDLED_SCRIPTS_DIR
    assert csv_rows.check_arg("a", "col", 2) == "a"


def test_the_openapi_document_states_the_rules() -> None:
    spec = create_app(Settings(api_token=None)).openapi()
    schemas = spec["components"]["schemas"]
    for name in ("ScriptRunRequest", "ScriptItemIn"):
        args = schemas[name]["properties"]["args"]
        assert args["maxItems"] == contract.MAX_ARGS
        assert args["items"]["maxLength"] == contract.MAX_ARG_CHARS
        assert args["items"]["pattern"] == contract.ARG_PATTERN
    amount = schemas["FeeRequest"]["properties"]["amount"]
    assert (amount["minimum"], amount["maximum"]) == (contract.MIN_AMOUNT, contract.MAX_AMOUNT)
    balance = schemas["CreateAccount"]["properties"]["balance"]
    assert (balance["minimum"], balance["maximum"]) == (contract.MIN_BALANCE, contract.MAX_BALANCE)
    items = schemas["FeeBatchRequest"]["properties"]["items"]
    assert items["maxItems"] == contract.MAX_BATCH_ITEMS
    for path, methods in spec["paths"].items():
        for operation in methods.values():
            for parameter in operation.get("parameters", []):
                if parameter["in"] == "path":
                    assert parameter["schema"]["pattern"] == contract.ID_PATTERN, path
                if parameter["name"] == "limit":
                    schema = parameter["schema"]
                    assert (schema["minimum"], schema["maximum"], schema["default"]) == (
                        contract.PAGE_LIMIT_MIN,
                        contract.PAGE_LIMIT_MAX,
                        contract.PAGE_LIMIT_DEFAULT,
                    )
