"""The scripts dir the script tests run with, and the processes their scripts leave behind."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry, ScriptSpec
from superscript.settings import Settings
from tests.leftovers import kill_leftovers
from tests.script_files import write_script

MakeScript = Callable[..., ScriptSpec]
MakeFile = Callable[..., Path]

FLAKY = """#!/usr/bin/env bash
# superscript.description: Fails twice, then succeeds (counts its runs per order)
# superscript.timeout: 10
# superscript.max_attempts: 3
set -euo pipefail
count_file="$SUPERSCRIPT_DATA_DIR/flaky-$SUPERSCRIPT_ORDER_ID.count"
count=$(( $(cat "$count_file" 2>/dev/null || echo 0) + 1 ))
printf '%s\\n' "$count" >"$count_file"
echo "attempt $SUPERSCRIPT_ATTEMPT run $count"
if (( count < 3 )); then
  echo "gateway busy" >&2
  exit 1
fi
"""

HANG = """#!/usr/bin/env bash
# superscript.description: Collects, then hangs until killed (for worker shutdown tests)
# superscript.timeout: 60
set -euo pipefail
printf '%s\\n' "$SUPERSCRIPT_IDEMPOTENCY_KEY" >>"$SUPERSCRIPT_DATA_DIR/payments.log"
printf '%s\\n' "$$" >"$SUPERSCRIPT_DATA_DIR/hang.pid.tmp"
mv -f "$SUPERSCRIPT_DATA_DIR/hang.pid.tmp" "$SUPERSCRIPT_DATA_DIR/hang.pid"
sleep 300
"""

# Two scripts whose keys collided under the old IDs: pay + x-1 and pay-x + 1.
PAY = """#!/usr/bin/env bash
# superscript.description: Appends its name and order to pay.log (for the old-ID tests)
set -euo pipefail
printf '%s %s\\n' "{name}" "$SUPERSCRIPT_ORDER_ID" >>"$SUPERSCRIPT_DATA_DIR/pay.log"
echo "paid by {name}"
"""

# Appends one line per start; with the argument "hang" it then waits to be killed.
GATED = """#!/usr/bin/env bash
# superscript.description: Collects; with "hang" it then hangs until killed
# superscript.timeout: 20
set -euo pipefail
printf 'attempt=%s\\n' "$SUPERSCRIPT_ATTEMPT" >>"$SUPERSCRIPT_DATA_DIR/starts-$SUPERSCRIPT_ORDER_ID"
if [[ "${1:-}" == hang ]]; then
  printf '%s\\n' "$$" >"$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID.tmp"
  mv -f "$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID.tmp" \\
    "$SUPERSCRIPT_DATA_DIR/pid-$SUPERSCRIPT_ORDER_ID"
  sleep 300
fi
echo "collected for $SUPERSCRIPT_ORDER_ID"
"""

# Always fails, and may be tried three times.
FAILING = """#!/usr/bin/env bash
# superscript.description: Always declined (three attempts allowed)
# superscript.timeout: 10
# superscript.max_attempts: 3
set -euo pipefail
printf 'attempt=%s\\n' "$SUPERSCRIPT_ATTEMPT" >>"$SUPERSCRIPT_DATA_DIR/starts-$SUPERSCRIPT_ORDER_ID"
echo "declined" >&2
exit 4
"""

TEST_SCRIPTS = {
    "flaky-payment.sh": FLAKY,
    "hang-payment.sh": HANG,
    "pay.sh": PAY.replace("{name}", "pay"),
    "pay-x.sh": PAY.replace("{name}", "pay-x"),
    "gated-payment.sh": GATED,
    "failing-payment.sh": FAILING,
}


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled scripts (scripts run with it as their cwd), plus the
    test scripts above and a file that is not executable."""
    path = tmp_path / "scripts"
    shutil.copytree(BUNDLED_SCRIPTS_DIR, path)
    for name, body in TEST_SCRIPTS.items():
        write_script(path, name, body)
    plain = '#!/usr/bin/env bash\necho ran >>"$SUPERSCRIPT_DATA_DIR/payments.log"\n'
    write_script(path, "not-executable.sh", plain, mode=0o644)
    return path


@pytest.fixture
def settings(settings: Settings, scripts_dir: Path) -> Settings:
    """conftest's settings (data dir = this test's tmp_path) with our scripts dir."""
    return settings.model_copy(update={"scripts_dir": scripts_dir})


@pytest.fixture
def registry(scripts_dir: Path) -> Registry:
    return Registry(scripts_dir)


@pytest.fixture
def make_script(scripts_dir: Path) -> MakeScript:
    """Write an executable script into the scripts dir and return its registered spec."""

    def make(name: str, body: str, *, interpreter: str = "/usr/bin/env bash") -> ScriptSpec:
        write_script(scripts_dir, f"{name}.sh", f"#!{interpreter}\n{body}")
        return Registry(scripts_dir).get(name)

    return make


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """PIDs a test saw; killed at the end if a failing test left them running."""
    pids: list[int] = []
    yield pids
    kill_leftovers(pids)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """The runner tests' data dir (not created: a script that writes there makes it)."""
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    """The extra environment of a runner test's run: its data dir."""
    return {"SUPERSCRIPT_DATA_DIR": str(data_dir)}


@pytest.fixture
def empty_scripts_dir(tmp_path: Path) -> Path:
    """``tmp_path/scripts`` with nothing in it, for the registry tests to write every file
    (so not for a test that also takes ``scripts_dir``, the same path filled)."""
    path = tmp_path / "scripts"
    path.mkdir()
    return path


@pytest.fixture
def make_file(empty_scripts_dir: Path) -> MakeFile:
    """Write an executable (by default) file into the empty scripts dir."""

    def make(
        file_name: str,
        body: str | bytes = "echo hi\n",
        *,
        mode: int = 0o755,
        directory: Path | None = None,
    ) -> Path:
        path = (directory or empty_scripts_dir) / file_name
        data = body if isinstance(body, bytes) else ("#!/usr/bin/env bash\n" + body).encode()
        path.write_bytes(data)
        path.chmod(mode)
        return path

    return make
