"""The script runner, with real subprocesses: timeouts, cancellations and failing heartbeats
kill the script's whole process group, and leave no process of it behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from pathlib import Path

import psutil
import pytest

from superscript.scripts import Registry, ScriptSpec
from superscript.scripts.runner import PIPE_DRAIN_SECONDS
from tests.leftovers import gone, read_pid, until, wait_gone
from tests.scripts.conftest import MakeScript
from tests.scripts.runs import run

# --- timeouts, leftovers, cancellation ------------------------------------------------


async def test_timeout_kills_the_script_and_its_background_child(
    registry: Registry, data_dir: Path, env: dict[str, str], leftover_pids: list[int]
) -> None:
    spec = registry.get("slow-payment")
    assert spec.timeout_seconds == 2.0
    started = time.monotonic()
    result = await run(spec, extra_env=env)
    elapsed = time.monotonic() - started
    main_pid = int((data_dir / "slow.pid").read_text())
    child_pid = int((data_dir / "slow-child.pid").read_text())
    leftover_pids.extend([main_pid, child_pid])
    assert result.exit_code is None
    assert result.timed_out is True
    assert result.killed_reason == "timeout after 2s"
    assert 2.0 <= elapsed < 2.0 + 2.0 + PIPE_DRAIN_SECONDS + 1.0
    await wait_gone(main_pid, child_pid)


async def test_timeout_argument_overrides_the_scripts_own(
    registry: Registry, env: dict[str, str], data_dir: Path, leftover_pids: list[int]
) -> None:
    result = await run(registry.get("slow-payment"), timeout=0.5, extra_env=env)
    leftover_pids.append(int((data_dir / "slow-child.pid").read_text()))
    assert (result.exit_code, result.timed_out) == (None, True)
    assert result.killed_reason == "timeout after 0.5s"
    assert result.duration_seconds < 2.0
    await wait_gone(*leftover_pids)


async def test_a_script_ignoring_sigterm_is_killed_after_the_grace(
    make_script: MakeScript, data_dir: Path, leftover_pids: list[int]
) -> None:
    spec = make_script(
        "stubborn",
        f"trap '' TERM\nsleep 300 &\necho $! > {data_dir}/child.pid\nsleep 300\n",
    )
    data_dir.mkdir()
    result = await run(spec, timeout=0.5, kill_grace=0.5)
    leftover_pids.append(int((data_dir / "child.pid").read_text()))
    assert (result.exit_code, result.timed_out) == (None, True)
    assert 1.0 <= result.duration_seconds < 1.0 + PIPE_DRAIN_SECONDS + 1.5
    await wait_gone(*leftover_pids)


async def test_background_children_do_not_outlive_a_normal_exit(
    make_script: MakeScript, data_dir: Path, leftover_pids: list[int]
) -> None:
    # The child also keeps stdout open: the run must not wait for it.
    spec = make_script(
        "leaves-child",
        f"sleep 300 &\necho $! > {data_dir}/child.pid\necho done\nexit 0\n",
    )
    data_dir.mkdir()
    result = await run(spec, timeout=30)
    child_pid = int((data_dir / "child.pid").read_text())
    leftover_pids.append(child_pid)
    assert (result.exit_code, result.stdout, result.timed_out) == (0, "done\n", False)
    assert result.duration_seconds < 5
    await wait_gone(child_pid)


async def test_an_escaped_grandchild_holding_the_pipes_cannot_hang_a_run(
    make_script: MakeScript, data_dir: Path, leftover_pids: list[int]
) -> None:
    # setsid leaves the script's process group, so killpg can't reach it; only
    # closing our end of the pipes ends the run.
    spec = make_script(
        "escapee",
        # Exit only once the escapee has its own session, or the group kill could
        # still reach it and the premise of the test would not hold.
        "setsid sleep 300 &\n"
        "pid=$!\n"
        'while [ "$(cut -d" " -f6 /proc/$pid/stat)" = "$(cut -d" " -f6 /proc/$$/stat)" ]; '
        "do sleep 0.01; done\n"
        f"echo $pid > {data_dir}/escapee.pid\necho bye\n",
    )
    data_dir.mkdir()
    result = await run(spec, timeout=30)
    escapee = int((data_dir / "escapee.pid").read_text())
    leftover_pids.append(escapee)
    assert not gone(escapee)  # it really was out of reach, holding the pipes
    assert (result.exit_code, result.stdout) == (0, "bye\n")
    assert result.duration_seconds < PIPE_DRAIN_SECONDS + 2.0


async def test_cancellation_kills_the_group_and_reraises(
    registry: Registry, data_dir: Path, env: dict[str, str], leftover_pids: list[int]
) -> None:
    task = asyncio.ensure_future(run(registry.get("slow-payment"), timeout=60, extra_env=env))
    main_pid = await read_pid(data_dir / "slow.pid")
    child_pid = await read_pid(data_dir / "slow-child.pid")
    leftover_pids.extend([main_pid, child_pid])
    assert not gone(main_pid) and not gone(child_pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed and reaped before CancelledError came out: no waiting needed for the main.
    assert gone(main_pid)
    await wait_gone(child_pid)


# A script that writes its pid, starts a background child that holds its pipes, writes
# the child's pid, then talks on both streams until it is killed.
TALKER = """set -eu
dir=$SUPERSCRIPT_DATA_DIR
mkdir -p "$dir"
echo $$ >"$dir/main.pid.tmp" && mv "$dir/main.pid.tmp" "$dir/main.pid"
sleep 300 &
echo $! >"$dir/child.pid.tmp" && mv "$dir/child.pid.tmp" "$dir/child.pid"
i=0
while :; do
  echo "out $i"; echo "err $i" >&2; i=$((i + 1))
  if [ "$i" = 50 ]; then : >"$dir/talking"; fi
  sleep 0.01
done
"""

# Cancel after this many loop iterations (0: before the run even starts), or once the
# script runs ("running"), or once it has talked for a while ("talking").
CANCEL_POINTS: list[int | str] = [*range(12), "running", "talking"]


def _hold_the_loop_until(path: Path) -> None:
    """Block the event loop on purpose (no await) until the script has written ``path``.

    The script runs on without the loop, while whatever the runner awaits (asyncio
    connecting the pipes, say) stays exactly where it is: the cancellation that follows
    lands in that window every time, not one run in fifty on a busy machine.
    """
    deadline = time.monotonic() + 30
    while not path.exists():
        if time.monotonic() > deadline:
            pytest.fail(f"{path} not written: the script did not get that far")
        time.sleep(0.005)


def _probes(token: str) -> list[int]:
    """Live (not zombie) processes whose environment carries ``token``: the run's group."""
    found = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("CANCEL_PROBE") == token and not gone(process.pid):
                found.append(process.pid)
    return found


def _started(spec: ScriptSpec) -> bool:
    """Whether the test process has forked the script already."""
    return any(
        str(spec.path) in " ".join(child.cmdline())
        for child in psutil.Process().children()
        if not gone(child.pid)
    )


@pytest.mark.timeout(120)
@pytest.mark.parametrize("point", CANCEL_POINTS)
async def test_cancellation_at_any_point_kills_the_group_and_reraises(
    make_script: MakeScript, data_dir: Path, leftover_pids: list[int], point: int | str
) -> None:
    """Wherever the cancel lands, CancelledError comes out and nothing of the run is left.

    Before the fix a cancel between the fork and the pipes being connected (points 1-3)
    hung until the script's background child exited: ``sleep 300``, past the timeout.
    """
    spec = make_script("talker", TALKER)
    token = uuid.uuid4().hex
    env = {"SUPERSCRIPT_DATA_DIR": str(data_dir), "CANCEL_PROBE": token}
    task = asyncio.ensure_future(run(spec, timeout=60, extra_env=env, kill_grace=0.5))
    if isinstance(point, int):
        for _ in range(point):
            await asyncio.sleep(0)
        if _started(spec):
            _hold_the_loop_until(data_dir / "child.pid")
    else:
        marker = "child.pid" if point == "running" else "talking"
        await until((data_dir / marker).exists, f"{marker} written")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for name in ("main.pid", "child.pid"):
        if (data_dir / name).exists():
            leftover_pids.append(int((data_dir / name).read_text()))
    if (data_dir / "main.pid").exists():
        # Killed and reaped before CancelledError came out.
        assert gone(int((data_dir / "main.pid").read_text()))
    # An orphaned child is reaped by init, in its own time.
    await until(lambda: not _probes(token), "every process of the run gone")


# --- heartbeats -----------------------------------------------------------------------


async def test_heartbeat_is_called_while_the_script_runs(make_script: MakeScript) -> None:
    beats: list[float] = []
    spec = make_script("sleeper", "sleep 1.5\n")
    result = await run(
        spec, heartbeat=lambda: beats.append(time.monotonic()), heartbeat_interval=0.2
    )
    assert result.exit_code == 0
    assert len(beats) >= 1
    count = len(beats)
    await asyncio.sleep(0.3)
    assert len(beats) == count  # none after the run


async def test_a_failing_heartbeat_kills_the_script(
    registry: Registry, data_dir: Path, env: dict[str, str], leftover_pids: list[int]
) -> None:
    class Boom(Exception):
        pass

    def heartbeat() -> None:
        if (data_dir / "slow.pid").exists():  # written after slow-child.pid
            raise Boom

    with pytest.raises(Boom):
        await run(
            registry.get("slow-payment"),
            timeout=60,
            heartbeat=heartbeat,
            heartbeat_interval=0.05,
            extra_env=env,
        )
    main_pid = int((data_dir / "slow.pid").read_text())
    child_pid = int((data_dir / "slow-child.pid").read_text())
    leftover_pids.extend([main_pid, child_pid])
    assert gone(main_pid)
    await wait_gone(child_pid)
