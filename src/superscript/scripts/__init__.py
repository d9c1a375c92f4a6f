"""Payment scripts: the registry of executables and the runner that executes them safely.

No workflow or activity here (the runner takes its heartbeat from its caller): the
workflow and activities build on these.

The names below are imported lazily, on first use: Temporal's workflow sandbox re-imports
this package for every workflow run of ``superscript.scripts.workflows``, and importing
the registry and the runner there each time made every script workflow start ~7x slower.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from superscript.scripts.registry import (
        BUNDLED_SCRIPTS_DIR,
        Registry,
        ScriptNotFound,
        ScriptSpec,
        is_valid_script_name,
    )
    from superscript.scripts.runner import RunResult, run_script

__all__ = [
    "BUNDLED_SCRIPTS_DIR",
    "Registry",
    "RunResult",
    "ScriptNotFound",
    "ScriptSpec",
    "is_valid_script_name",
    "run_script",
]

_HOME = {
    "BUNDLED_SCRIPTS_DIR": "registry",
    "Registry": "registry",
    "ScriptNotFound": "registry",
    "ScriptSpec": "registry",
    "is_valid_script_name": "registry",
    "RunResult": "runner",
    "run_script": "runner",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)
