"""Requests the contract refuses, as tables: every route, every way a field can be wrong.

``Bad`` is one refused request; its ``path`` and ``body`` may hold placeholders, filled in
per test with an existing account, a fresh order and a fresh account (``send``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from superscript.api.schemas import MAX_AMOUNT

# Placeholders filled in per test: an existing account, a fresh order, a fresh account.
ACCOUNT = "<account>"
ORDER = "<order>"
NEW = "<new>"

MISSING = object()  # no body at all


@dataclass(frozen=True)
class Bad:
    """One refused request. ``path`` and ``body`` may hold the placeholders above."""

    method: str
    path: str
    body: Any = MISSING
    raw: bytes | None = None  # sent as is instead of ``body``
    content_type: str = "application/json"
    status: int = 422
    code: str = "validation_error"
    marks: tuple[Any, ...] = field(default=())


def fill(value: Any, names: dict[str, str]) -> Any:
    """``value`` with every placeholder string replaced, at any depth."""
    if isinstance(value, str):
        for placeholder, real in names.items():
            value = value.replace(placeholder, real)
        return value
    if isinstance(value, dict):
        return {fill(key, names): fill(item, names) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, names) for item in value]
    return value


# Values that are not money: floats, numeric strings, bools, null, containers.
NOT_INTEGERS: list[tuple[str, Any]] = [
    ("float-1.0", 1.0),
    ("float-1.5", 1.5),
    ("numeric-string", "100"),
    ("true", True),
    ("false", False),
    ("null", None),
    ("list", [100]),
    ("object", {"value": 100}),
]
# Integers out of bounds for both fields; 0 and -1 are added per field below.
HUGE_INTEGERS: list[tuple[str, Any]] = [
    ("max-plus-one", MAX_AMOUNT + 1),
    ("2^63", 2**63),
    ("2^64", 2**64),
    ("10^30", 10**30),
    ("minus-2^63-minus-one", -(2**63) - 1),
]
# Identifiers outside the contract: type, characters and length.
BAD_IDS: list[tuple[str, Any]] = [
    ("empty", ""),
    ("space", "a b"),
    ("slash", "a/b"),
    ("percent", "a%b"),
    ("unicode", "caf\u00e9"),
    ("unicode-digit", "\u0661\u0662"),
    ("newline-suffix", "abc\n"),
    ("nul", "a\x00b"),
    ("129-chars", "a" * 129),
    ("int", 123),
    ("bool", True),
    ("null", None),
    ("list", ["a"]),
]
# Identifiers in a path: (case id, percent-encoded segment, status, code).
BAD_PATH_IDS: list[tuple[str, str, int, str]] = [
    ("space", "a%20b", 422, "validation_error"),
    ("percent", "a%25b", 422, "validation_error"),
    ("unicode", quote("caf\u00e9"), 422, "validation_error"),
    ("newline-suffix", "abc%0A", 422, "validation_error"),
    ("129-chars", "a" * 129, 422, "validation_error"),
    ("plus-is-not-space", "a+b", 422, "validation_error"),
    # An encoded '/' is decoded before routing: the path then matches no route.
    ("encoded-slash", "a%2Fb", 404, "not_found"),
]
# Raw bodies that are not a JSON object of the right shape.
RAW_BODIES: list[tuple[str, bytes, str]] = [
    ("truncated-json", b'{"account_id": "<account>", ', "application/json"),
    ("not-json", b"not json", "application/json"),
    ("single-quotes", b"{'account_id': '<account>'}", "application/json"),
    ("invalid-utf8", b"\xff\xfe\xfd", "application/json"),
    ("empty", b"", "application/json"),
    ("empty-no-content-type", b"", ""),
    ("json-null", b"null", "application/json"),
    ("json-list", b'[{"account_id": "<account>"}]', "application/json"),
    ("json-string", b'"<account>"', "application/json"),
    ("json-number", b"1", "application/json"),
    # Read as JSON whatever the content type says (the contract): still not a good body.
    ("text-plain-bad-json", b'{"account_id": "<account>", "VALUE": 1.5}', "text/plain"),
    ("no-content-type-not-json", b"account_id=<account>&VALUE=1", ""),
    ("form-content-type", b"account_id=<account>&VALUE=1", "application/x-www-form-urlencoded"),
    ("nested-too-deep", b"[" * 100_000 + b"]" * 100_000, "application/json"),
]
# Numbers Python's JSON reader turns into floats, or refuses.
RAW_NUMBERS: list[tuple[str, bytes]] = [
    ("exponent", b"1e2"),
    ("decimal-zero", b"100.0"),
    ("nan", b"NaN"),
    ("infinity", b"Infinity"),
    ("5000-digits", b"9" * 5000),
]

FEE_ROUTES = ["/naive/orders/<order>/fee", "/orders/<order>/fee"]


def fee_cases(route: str) -> list[tuple[str, Bad]]:
    name = "naive-fee" if route.startswith("/naive") else "fee"
    good = {"account_id": ACCOUNT, "amount": 100}
    cases: list[tuple[str, Bad]] = []
    for case, amount in [*NOT_INTEGERS, ("zero", 0), ("negative", -1), *HUGE_INTEGERS]:
        cases.append((f"{name}-amount-{case}", Bad("POST", route, {**good, "amount": amount})))
    for case, account_id in BAD_IDS:
        body = {**good, "account_id": account_id}
        cases.append((f"{name}-account_id-{case}", Bad("POST", route, body)))
    for case, number in RAW_NUMBERS:
        raw = b'{"account_id": "<account>", "amount": ' + number + b"}"
        cases.append((f"{name}-amount-raw-{case}", Bad("POST", route, raw=raw)))
    for case, raw, content_type in RAW_BODIES:
        raw = raw.replace(b"VALUE", b"amount")
        cases.append(
            (f"{name}-body-{case}", Bad("POST", route, raw=raw, content_type=content_type))
        )
    cases += [
        (f"{name}-missing-amount", Bad("POST", route, {"account_id": ACCOUNT})),
        (f"{name}-missing-account_id", Bad("POST", route, {"amount": 100})),
        (f"{name}-empty-object", Bad("POST", route, {})),
        (f"{name}-no-body", Bad("POST", route)),
        (f"{name}-extra-field", Bad("POST", route, {**good, "currency": "EUR"})),
        (f"{name}-extra-order_id", Bad("POST", route, {**good, "order_id": ORDER})),
        (f"{name}-amount-as-key-case", Bad("POST", route, {"account_id": ACCOUNT, "Amount": 1})),
        (f"{name}-list-of-good-body", Bad("POST", route, [good])),
    ]
    for case, segment, status, code in BAD_PATH_IDS:
        path = route.replace(ORDER, segment)
        cases.append((f"{name}-path-{case}", Bad("POST", path, good, status=status, code=code)))
    path = route.replace(ORDER, "")
    cases.append((f"{name}-path-empty", Bad("POST", path, good, status=404, code="not_found")))
    return cases


def account_cases() -> list[tuple[str, Bad]]:
    good = {"account_id": NEW, "balance": 100}
    cases: list[tuple[str, Bad]] = []
    for case, balance in [*NOT_INTEGERS, ("negative", -1), *HUGE_INTEGERS]:
        body = {**good, "balance": balance}
        cases.append((f"create-balance-{case}", Bad("POST", "/accounts", body)))
    for case, account_id in BAD_IDS:
        body = {**good, "account_id": account_id}
        cases.append((f"create-account_id-{case}", Bad("POST", "/accounts", body)))
    for case, number in RAW_NUMBERS:
        raw = b'{"account_id": "<new>", "balance": ' + number + b"}"
        cases.append((f"create-balance-raw-{case}", Bad("POST", "/accounts", raw=raw)))
    for case, raw, content_type in RAW_BODIES:
        raw = raw.replace(b"<account>", b"<new>").replace(b"VALUE", b"balance")
        bad = Bad("POST", "/accounts", raw=raw, content_type=content_type)
        cases.append((f"create-body-{case}", bad))
    cases += [
        ("create-missing-balance", Bad("POST", "/accounts", {"account_id": NEW})),
        ("create-missing-account_id", Bad("POST", "/accounts", {"balance": 100})),
        ("create-empty-object", Bad("POST", "/accounts", {})),
        ("create-no-body", Bad("POST", "/accounts")),
        ("create-extra-field", Bad("POST", "/accounts", {**good, "currency": "EUR"})),
        ("create-list-of-good-body", Bad("POST", "/accounts", [good])),
    ]
    for case, segment, status, code in BAD_PATH_IDS:
        bad = Bad("GET", f"/accounts/{segment}", status=status, code=code)
        cases.append((f"get-account-path-{case}", bad))
    # '/accounts/' with an empty id: no route, and no redirect to one either.
    cases.append(("get-account-path-empty", Bad("GET", "/accounts/", status=404, code="not_found")))
    return cases


def get_fee_cases() -> list[tuple[str, Bad]]:
    cases = [
        (f"get-fee-path-{case}", Bad("GET", f"/orders/{segment}/fee", status=status, code=code))
        for case, segment, status, code in BAD_PATH_IDS
    ]
    cases.append(("get-fee-path-empty", Bad("GET", "/orders//fee", status=404, code="not_found")))
    return cases


BAD_CASES = [
    *account_cases(),
    *[case for route in FEE_ROUTES for case in fee_cases(route)],
    *get_fee_cases(),
]


async def send(http: httpx.AsyncClient, bad: Bad, names: dict[str, str]) -> httpx.Response:
    path = fill(bad.path, names)
    headers = {"content-type": bad.content_type} if bad.content_type else {}
    if bad.raw is not None:
        content = fill(bad.raw.decode("latin-1"), names).encode("latin-1")
        return await http.request(bad.method, path, content=content, headers=headers)
    if bad.body is MISSING:
        return await http.request(bad.method, path)
    content = json.dumps(fill(bad.body, names)).encode()
    return await http.request(bad.method, path, content=content, headers=headers)
