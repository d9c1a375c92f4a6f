"""Every rule of CONTRACT.md that input is checked against, written once.

The API's request models, the batch store, the CSV reader of ``superscript batch`` and
the script registry all take their rules from here, so that no two of them can drift
apart (a script batch once took an argument with a NUL byte that a single run refused).
Plain values and small pure functions only: workflows import this module through the
sandbox, so it does no I/O and imports nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

# --- identifiers: account_id, order_id, batch_id, refund_id, script names ----------------

ID_MAX_LENGTH: Final = 128
ID_CHARS: Final = "A-Za-z0-9._:-"
ID_PATTERN: Final = rf"^[{ID_CHARS}]{{1,{ID_MAX_LENGTH}}}$"
"""The identifier rule as a JSON Schema / OpenAPI ``pattern``."""
ID_RE: Final = re.compile(rf"[{ID_CHARS}]{{1,{ID_MAX_LENGTH}}}")
ID_RULE: Final = f"1 to {ID_MAX_LENGTH} characters of A-Z a-z 0-9 . _ : -"
"""The identifier rule in words, for error messages and help texts."""


def is_identifier(value: str) -> bool:
    """Whether ``value`` is an identifier of the contract."""
    return ID_RE.fullmatch(value) is not None


def is_script_name(name: str) -> bool:
    """Whether ``name`` can name a script: an identifier that is also a plain file name.

    ``.`` and ``..`` are identifiers, but as file names they are the directory itself and
    its parent, so no script can have them (it would be looked up outside the scripts dir).
    """
    return name not in (".", "..") and is_identifier(name)


# --- money: integer minor units -------------------------------------------------------------

MIN_AMOUNT: Final = 1
MAX_AMOUNT: Final = 10**15
MIN_BALANCE: Final = 0
MAX_BALANCE: Final = 10**15


def is_amount(value: int) -> bool:
    return MIN_AMOUNT <= value <= MAX_AMOUNT


def is_balance(value: int) -> bool:
    return MIN_BALANCE <= value <= MAX_BALANCE


# --- script arguments ------------------------------------------------------------------------

MAX_ARGS: Final = 256
MAX_ARG_CHARS: Final = 4096
MAX_ARGS_TOTAL_CHARS: Final = 64 * 1024
"""All args of one run together: far below the kernel's argv limit, whatever the encoding."""
ARG_PATTERN: Final = r"^[^\x00]*$"
"""What OpenAPI can say of an argument's text: no NUL (exec can't pass one). Lone
surrogates are refused too (they are not text a process can receive), but a pattern can't
say so the same way in every regex dialect, so the schema's description says it."""
ARG_RULE: Final = (
    f"at most {MAX_ARG_CHARS} characters of Unicode text without NUL (and no lone surrogate)"
)


def arg_problem(arg: str) -> str | None:
    """Why ``arg`` can't be a script argument (an argv entry), or None when it can."""
    if len(arg) > MAX_ARG_CHARS:
        return f"is longer than {MAX_ARG_CHARS} characters"
    if "\x00" in arg:
        return "contains a NUL character"
    try:
        arg.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode text (a lone surrogate)"
    return None


def args_problem(args: Sequence[str]) -> str | None:
    """Why ``args`` together can't be one run's arguments (each is checked on its own)."""
    if len(args) > MAX_ARGS:
        return f"at most {MAX_ARGS} arguments are allowed, not {len(args)}"
    if sum(len(arg) for arg in args) > MAX_ARGS_TOTAL_CHARS:
        return f"the arguments may hold at most {MAX_ARGS_TOTAL_CHARS} characters in all"
    return None


# --- request bodies, batches and pages --------------------------------------------------------

DEFAULT_BODY_LIMIT: Final = 1024 * 1024
"""Every route but ``POST /batches`` takes a small JSON object."""
BATCH_BODY_LIMIT: Final = 160 * 1024 * 1024
"""``POST /batches``: a million fee items with generous identifiers (about 120 bytes each)."""
MAX_BATCH_ITEMS: Final = 1_000_000

PAGE_LIMIT_MIN: Final = 1
PAGE_LIMIT_MAX: Final = 1000
PAGE_LIMIT_DEFAULT: Final = 100


def is_batch_submission(method: str, path: str) -> bool:
    """``POST /batches``: the one route with a large body, and the one that takes CSV."""
    return method == "POST" and path.rstrip("/") == "/batches"


def body_limit(method: str, path: str) -> int:
    """The largest body, in bytes, that a request to ``method path`` may carry."""
    return BATCH_BODY_LIMIT if is_batch_submission(method, path) else DEFAULT_BODY_LIMIT


# --- scripts -----------------------------------------------------------------------------------

# Not resolve()d: the workflow sandbox re-imports modules and forbids file-system calls at
# import time (a module's __file__ is absolute already).
BUNDLED_SCRIPTS_DIR: Final = Path(__file__).parent / "bundled_scripts"
"""The example scripts shipped with the package: the default scripts dir."""
