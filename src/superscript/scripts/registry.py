"""The script registry: a directory of executables, each with settings in its header.

The directory is scanned on every call, so an operator can drop a script in while the
service runs. A name given by a caller is only ever looked up among the scanned entries,
never joined onto a path: a name like ``..`` or ``a/b`` can't reach outside the directory.
"""

from __future__ import annotations

import builtins
import logging
import math
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from pydantic import BaseModel, ConfigDict, Field

from superscript.contract import BUNDLED_SCRIPTS_DIR as BUNDLED_SCRIPTS_DIR
from superscript.contract import ID_PATTERN, is_script_name

logger = logging.getLogger(__name__)

SCRIPT_NAME_PATTERN: Final = ID_PATTERN
"""What a script name may look like (the identifiers of the public contract)."""

DEFAULT_TIMEOUT_SECONDS: Final = 60.0
DEFAULT_MAX_ATTEMPTS: Final = 1
HEADER_MAX_LINES: Final = 50
HEADER_MAX_BYTES: Final = 64 * 1024

_HEADER_RE: Final = re.compile(r"#\s*superscript\.([A-Za-z_]+)\s*:(.*)")
_INT_RE: Final = re.compile(r"[0-9]+")


class ScriptSpec(BaseModel):
    """One registered script and the settings its author wrote in its header."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(pattern=SCRIPT_NAME_PATTERN)
    path: Path
    description: str = ""
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0)
    max_attempts: int = Field(default=DEFAULT_MAX_ATTEMPTS, ge=1)


class ScriptNotFound(LookupError):
    """No registered script has this name (the API answers ``404 script_not_found``)."""

    code = "script_not_found"

    def __init__(self, name: str) -> None:
        self.name = name
        self.detail = f"no script named {name!r} is registered"
        super().__init__(self.detail)


def is_valid_script_name(name: str) -> bool:
    """Whether ``name`` has the shape of a script name (says nothing of existence)."""
    return is_script_name(name)


@dataclass(frozen=True)
class _Header:
    description: str
    timeout_seconds: float
    max_attempts: int


# Parsed headers keyed by file identity and version, so that re-scanning on every call
# neither re-reads unchanged files nor repeats the same warning for each call.
_StatKey = tuple[int, int, int, int]


def _stat_key(st: os.stat_result) -> _StatKey:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def parse_header(text: str, *, source: str = "<script>") -> tuple[str, float, int]:
    """Read ``(description, timeout_seconds, max_attempts)`` from a script's first lines.

    Only comment lines within the first 50 lines count. For each setting the first
    valid value wins; an invalid value is logged and ignored, so a typo falls back to
    the safe default (one attempt) rather than to something the author didn't mean.
    """
    description: str | None = None
    timeout: float | None = None
    attempts: int | None = None
    for lineno, line in enumerate(text.splitlines()[:HEADER_MAX_LINES], start=1):
        match = _HEADER_RE.fullmatch(line.strip())
        if match is None:
            continue
        key, value = match.group(1), match.group(2).strip()
        if key == "description":
            if description is None:
                description = value
        elif key == "timeout":
            parsed_timeout = _parse_timeout(value)
            if parsed_timeout is None:
                logger.warning(
                    "%s:%d: ignoring invalid superscript.timeout %r "
                    "(want a positive number of seconds)",
                    source,
                    lineno,
                    value,
                )
            elif timeout is None:
                timeout = parsed_timeout
        elif key == "max_attempts":
            parsed_attempts = _parse_attempts(value)
            if parsed_attempts is None:
                logger.warning(
                    "%s:%d: ignoring invalid superscript.max_attempts %r (want an integer >= 1)",
                    source,
                    lineno,
                    value,
                )
            elif attempts is None:
                attempts = parsed_attempts
        else:
            logger.warning("%s:%d: ignoring unknown setting superscript.%s", source, lineno, key)
    return (
        description if description is not None else "",
        timeout if timeout is not None else DEFAULT_TIMEOUT_SECONDS,
        attempts if attempts is not None else DEFAULT_MAX_ATTEMPTS,
    )


def _parse_timeout(value: str) -> float | None:
    try:
        seconds = float(value)
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds <= 0:
        return None
    return seconds


def _parse_attempts(value: str) -> int | None:
    # A regex rather than bare int(): int() also takes "+3", "1_0" and " 3 ".
    if _INT_RE.fullmatch(value) is None:
        return None
    attempts = int(value)
    return attempts if attempts >= 1 else None


class Registry:
    """The scripts in one directory, re-scanned on every call (the directory is small).

    A script is a regular executable file directly inside the directory, named after
    its file name without the last extension (``collect-payment.sh`` is
    ``collect-payment``). Ignored: dotfiles, subdirectories, non-executable files,
    names outside ``A-Z a-z 0-9 . _ : -`` (1 to 128), and symlinks whose target lies
    outside the directory. When two files map to one name (``pay.py`` and ``pay.sh``),
    the one whose file name sorts first wins, so the choice never depends on the order
    the filesystem lists them in.
    """

    def __init__(self, scripts_dir: Path) -> None:
        self.scripts_dir = Path(scripts_dir)
        self._headers: dict[str, tuple[_StatKey, _Header]] = {}

    def list(self) -> builtins.list[ScriptSpec]:
        """All registered scripts, sorted by name."""
        return sorted(self._scan().values(), key=lambda spec: spec.name)

    def get(self, name: str) -> ScriptSpec:
        """The script called ``name``; :class:`ScriptNotFound` if there is none."""
        if not is_valid_script_name(name):
            raise ScriptNotFound(name)
        spec = self._scan().get(name)
        if spec is None:
            raise ScriptNotFound(name)
        return spec

    def _scan(self) -> dict[str, ScriptSpec]:
        try:
            root = self.scripts_dir.resolve(strict=True)
            with os.scandir(root) as it:
                file_names = sorted(entry.name for entry in it)
        except OSError as exc:
            logger.warning("scripts dir %s is not readable: %s", self.scripts_dir, exc)
            return {}
        found: dict[str, ScriptSpec] = {}
        seen_files: set[str] = set()
        for file_name in file_names:
            if file_name.startswith("."):
                continue
            name = os.path.splitext(file_name)[0]
            if not is_valid_script_name(name):
                continue
            if name in found:
                logger.debug("script %r: %s shadowed by %s", name, file_name, found[name].path.name)
                continue
            spec = self._load(root, file_name, name)
            if spec is not None:
                found[name] = spec
                seen_files.add(file_name)
        # Forget headers of files that are gone, so the cache stays as small as the dir.
        for stale in self._headers.keys() - seen_files:
            self._headers.pop(stale, None)
        return found

    def _load(self, root: Path, file_name: str, name: str) -> ScriptSpec | None:
        path = root / file_name
        try:
            if path.is_symlink():
                target = path.resolve(strict=True)
                if not target.is_relative_to(root):
                    logger.debug("ignoring %s: symlink to %s outside %s", path, target, root)
                    return None
            st = path.stat()
        except (OSError, RuntimeError):  # dangling link, loop, vanished meanwhile
            return None
        if not stat.S_ISREG(st.st_mode) or not os.access(path, os.X_OK):
            return None
        header = self._header(path, file_name, st)
        return ScriptSpec(
            name=name,
            path=path,
            description=header.description,
            timeout_seconds=header.timeout_seconds,
            max_attempts=header.max_attempts,
        )

    def _header(self, path: Path, file_name: str, st: os.stat_result) -> _Header:
        key = _stat_key(st)
        cached = self._headers.get(file_name)
        if cached is not None and cached[0] == key:
            return cached[1]
        try:
            with path.open("rb") as f:
                head = f.read(HEADER_MAX_BYTES)
        except OSError as exc:
            # Executable but unreadable (e.g. mode 0111): run it with the safe defaults.
            logger.warning("cannot read the header of %s (%s): using defaults", path, exc)
            head = b""
        description, timeout, attempts = parse_header(
            head.decode("utf-8", errors="replace"), source=str(path)
        )
        header = _Header(description, timeout, attempts)
        self._headers[file_name] = (key, header)
        return header
