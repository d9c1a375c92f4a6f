"""The data dir's lock (issue 9, point 2): a data dir in use is refused, naming its holder,
and a holder killed without a goodbye frees it. The real commands refusing a second stack
are in ``system/test_datadir_commands``."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from superscript import datadir

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from superscript import datadir
    lock = datadir.acquire(Path(sys.argv[1]), command="the test's holder")
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_held_data_dir_is_refused_naming_the_holder_and_freed_by_sigkill(
    tmp_path: Path,
) -> None:
    with holder(tmp_path) as process:
        with pytest.raises(datadir.DataDirInUse) as refusal:
            datadir.acquire(tmp_path)
        assert f"pid {process.pid} (the test's holder" in str(refusal.value)
        # SIGKILL: no goodbye, the lock file stays behind with the dead holder's pid.
        process.kill()
        process.wait()
    assert str(process.pid) in (tmp_path / datadir.LOCK_FILE).read_text()
    lock = datadir.acquire(tmp_path, command="next")
    try:
        assert json.loads((tmp_path / datadir.LOCK_FILE).read_text())["pid"] != process.pid
    finally:
        lock.release()
    datadir.acquire(tmp_path).release()
