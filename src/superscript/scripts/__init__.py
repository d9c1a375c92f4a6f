"""Payment scripts: the registry of executables and the runner that executes them safely.

Pure Python, no Temporal: the workflow and activities build on these.
"""

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
