"""What refusals and records show: URLs with their password hidden, and this command."""

from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError


def hide_password(url: str) -> str:
    """``url`` with its password shown as ``***``, fit to print and to record."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return _hide_passwords_in(url)


def _hide_passwords_in(text: str) -> str:
    """``text`` with the password of every ``scheme://user:password@`` in it hidden."""
    return re.sub(r"(://[^:/@\s]*:)[^/\s]*@", r"\1***@", text)


def ledger_url(url: str) -> str:
    """``url`` as printed and recorded: password hidden, a SQLite file by its full path."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return hide_password(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        parsed = parsed.set(database=str(Path(parsed.database).resolve()))
    return hide_password(parsed.render_as_string(hide_password=False))


def this_command() -> str:
    """How this process was started, as a user would type it (passwords hidden)."""
    return _hide_passwords_in(shlex.join(["superscript", *sys.argv[1:]]))
