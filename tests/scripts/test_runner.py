"""The script runner, with real subprocesses: environment, argv, output caps, exit codes,
and that timeouts and cancellations leave no process of the script behind."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry, RunResult, ScriptSpec, run_script
from superscript.scripts.runner import ENV_ALLOW_LIST, OUTPUT_LIMIT_BYTES, PIPE_DRAIN_SECONDS

MakeScript = Callable[..., ScriptSpec]


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled scripts: scripts run with it as their cwd."""
    path = tmp_path / "scripts"
    shutil.copytree(BUNDLED_SCRIPTS_DIR, path)
    return path


@pytest.fixture
def registry(scripts_dir: Path) -> Registry:
    return Registry(scripts_dir)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def env(data_dir: Path) -> dict[str, str]:
    return {"SUPERSCRIPT_DATA_DIR": str(data_dir)}


@pytest.fixture
def make_script(scripts_dir: Path) -> MakeScript:
    """Write an executable script into the scripts dir and return its registered spec."""

    def make(name: str, body: str, *, interpreter: str = "/usr/bin/env bash") -> ScriptSpec:
        path = scripts_dir / f"{name}.sh"
        path.write_text(f"#!{interpreter}\n{body}")
        path.chmod(0o755)
        return Registry(scripts_dir).get(name)

    return make


@pytest.fixture
def leftover_pids() -> Iterator[list[int]]:
    """PIDs a test started; killed at the end if a failing test left them running."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if not _gone(pid):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


def _gone(pid: int) -> bool:
    """Dead: no such process, or a zombie (an orphan waits for init to reap it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


async def _wait_until(condition: Callable[[], bool], what: str, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {seconds}s: {what}")
        await asyncio.sleep(0.02)


async def _wait_gone(*pids: int) -> None:
    deadline = time.monotonic() + 10.0
    for pid in pids:
        while not _gone(pid):
            if time.monotonic() > deadline:
                pytest.fail(f"process {pid} still alive")
            await asyncio.sleep(0.02)


async def _read_pid(path: Path) -> int:
    await _wait_until(path.exists, f"{path} written")
    return int(path.read_text())


async def run(
    spec: ScriptSpec,
    args: list[str] | None = None,
    *,
    order_id: str = "order-1",
    attempt: int = 1,
    timeout: float | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_interval: float = 1.0,
    extra_env: dict[str, str] | None = None,
    kill_grace: float = 2.0,
) -> RunResult:
    return await run_script(
        spec,
        args or [],
        order_id=order_id,
        attempt=attempt,
        timeout=timeout,
        heartbeat=heartbeat,
        heartbeat_interval=heartbeat_interval,
        extra_env=extra_env,
        kill_grace=kill_grace,
    )


# --- the bundled examples -------------------------------------------------------------


async def test_collect_payment_appends_one_line(
    registry: Registry, data_dir: Path, env: dict[str, str]
) -> None:
    spec = registry.get("collect-payment")
    result = await run(spec, ["1250", "EUR"], order_id="ord-42", attempt=2, extra_env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "collected 1250 EUR for ord-42\n"
    assert (result.stderr, result.timed_out, result.killed_reason) == ("", False, None)
    assert result.duration_seconds >= 0.2
    log = (data_dir / "payments.log").read_text()
    assert log == "collect-payment/ord-42 ord-42 1250 EUR attempt=2\n"

    # Not idempotent by itself: that is what the service is for.
    await run(spec, ["1250"], order_id="ord-42", extra_env=env)
    lines = (data_dir / "payments.log").read_text().splitlines()
    assert lines[1] == "collect-payment/ord-42 ord-42 1250 USD attempt=1"


async def test_refund_payment_appends_to_refunds_log(
    registry: Registry, data_dir: Path, env: dict[str, str]
) -> None:
    result = await run(registry.get("refund-payment"), ["99"], order_id="r-1", extra_env=env)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "refunded 99 USD for r-1\n"
    assert (data_dir / "refunds.log").read_text() == "refund-payment/r-1 r-1 99 USD attempt=1\n"
    assert not (data_dir / "payments.log").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["12.50"],
        ["-5"],
        ["1e3"],
        [""],
        ["10", "usd"],
        ["10", "EUR\nfake line"],
        [],
        ["1", "A", "B"],
    ],
)
async def test_payment_scripts_reject_bad_arguments(
    registry: Registry, data_dir: Path, env: dict[str, str], args: list[str]
) -> None:
    for name in ["collect-payment", "refund-payment"]:
        result = await run(registry.get(name), args, extra_env=env)
        assert result.exit_code == 2
        assert result.stdout == ""
        assert result.stderr.strip()
    assert not data_dir.exists() or not any(data_dir.iterdir())


async def test_failing_script_reports_exit_code_and_stderr(registry: Registry) -> None:
    result = await run(registry.get("fail-payment"))
    assert result.exit_code == 3
    assert result.stderr == "card declined\n"
    assert (result.stdout, result.timed_out, result.killed_reason) == ("", False, None)


# --- environment, argv, cwd, stdin ----------------------------------------------------


async def test_environment_is_an_allow_list_plus_the_run_identity(
    make_script: MakeScript, monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    secrets = {
        "SUPERSCRIPT_API_TOKEN": "s3cret-token",
        "SUPERSCRIPT_DATABASE_URL": "postgresql://u:pw@db/ledger",
        "TEMPORAL_API_KEY": "temporal-key",
        "AWS_SECRET_ACCESS_KEY": "aws",
        "PYTHONPATH": "/somewhere",
    }
    for key, value in secrets.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("LANG", "C.UTF-8")
    dump = "import json, os; print(json.dumps(dict(os.environ)))"
    spec = make_script("show-env", f"exec {sys.executable} -c '{dump}'\n")
    result = await run(
        spec,
        order_id="ord-7",
        attempt=3,
        extra_env={"SUPERSCRIPT_DATA_DIR": str(data_dir)},
    )
    assert result.exit_code == 0, result.stderr
    seen: dict[str, str] = json.loads(result.stdout)
    assert seen["SUPERSCRIPT_ORDER_ID"] == "ord-7"
    assert seen["SUPERSCRIPT_IDEMPOTENCY_KEY"] == "show-env/ord-7"
    assert seen["SUPERSCRIPT_ATTEMPT"] == "3"
    assert seen["SUPERSCRIPT_SCRIPT"] == "show-env"
    assert seen["SUPERSCRIPT_DATA_DIR"] == str(data_dir)
    assert seen["LANG"] == "C.UTF-8"
    assert seen["PATH"] == os.environ["PATH"]
    for key in secrets:
        assert key not in seen
    for value in secrets.values():
        assert value not in result.stdout
    ours = {
        "SUPERSCRIPT_ORDER_ID",
        "SUPERSCRIPT_IDEMPOTENCY_KEY",
        "SUPERSCRIPT_ATTEMPT",
        "SUPERSCRIPT_SCRIPT",
        "SUPERSCRIPT_DATA_DIR",
    }
    # Whatever bash or python add themselves (PWD, SHLVL, _, LC_CTYPE) is not ours to worry.
    added_by_interpreters = {"PWD", "OLDPWD", "SHLVL", "_", "LC_CTYPE"}
    assert set(seen) - set(ENV_ALLOW_LIST) - ours - added_by_interpreters == set()


async def test_path_has_a_default_and_extra_env_goes_on_top(
    make_script: MakeScript, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_script("path", 'printf "%s|%s\\n" "$PATH" "$SUPERSCRIPT_ATTEMPT"\n')
    monkeypatch.delenv("PATH")
    result = await run(spec, attempt=1, extra_env={"SUPERSCRIPT_ATTEMPT": "override"})
    assert result.stdout == "/usr/local/bin:/usr/bin:/bin|override\n"


async def test_cwd_is_the_scripts_dir_and_stdin_is_empty(
    make_script: MakeScript, scripts_dir: Path
) -> None:
    # `cat` would wait forever on an inherited terminal or pipe.
    spec = make_script("where", "pwd\ncat\necho end\n")
    result = await run(spec, timeout=10)
    assert result.stdout == f"{scripts_dir.resolve()}\nend\n"


SHELL_METACHARACTERS = [
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "&& touch pwned",
    "|| touch pwned",
    "| touch pwned",
    "& touch pwned",
    "> pwned",
    "< /etc/passwd",
    "2>&1",
    "a\nb\n\ntouch pwned",
    "'single quoted'",
    '"double quoted"',
    "unbalanced ' quote",
    "*",
    "?",
    "[a-z]*",
    "~",
    "~root",
    "$HOME",
    "${PATH}",
    "$((1+1))",
    "\\",
    "\\n",
    "%s %d %%",
    "-n",
    "-e",
    "--help",
    "",
    "  leading and trailing  ",
    "tab\there",
    "ünïcödé ✓",
    "!!",
    "#comment",
    "{a,b}",
]


async def test_arguments_arrive_verbatim_and_nothing_executes(
    registry: Registry, scripts_dir: Path, tmp_path: Path
) -> None:
    (scripts_dir / "marker-a.txt").write_text("")  # something for a glob to match
    before = sorted(p.name for p in tmp_path.rglob("*"))
    result = await run(registry.get("echo-args"), SHELL_METACHARACTERS)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "".join(f"{arg}\n" for arg in SHELL_METACHARACTERS)
    assert result.stderr == ""
    assert sorted(p.name for p in tmp_path.rglob("*")) == before
    assert not (scripts_dir / "pwned").exists()
    assert not Path("pwned").exists()


async def test_no_arguments(registry: Registry) -> None:
    result = await run(registry.get("echo-args"), [])
    assert (result.exit_code, result.stdout) == (0, "")


# --- output ---------------------------------------------------------------------------


async def test_output_is_cut_to_exactly_the_last_64_kib_of_each_stream(
    make_script: MakeScript,
) -> None:
    # Both streams large and interleaved: reading one after the other would deadlock.
    spec = make_script(
        "chatty",
        "import sys\n"
        "for i in range(20000):\n"
        "    sys.stdout.write(f'out {i:06d}\\n')\n"
        "    sys.stderr.write(f'err {i:06d} ' + 'x' * 40 + '\\n')\n"
        "sys.stdout.write('THE END')\n",
        interpreter=sys.executable,
    )
    result = await run(spec, timeout=30)
    expected_out = "".join(f"out {i:06d}\n" for i in range(20000)) + "THE END"
    expected_err = "".join(f"err {i:06d} " + "x" * 40 + "\n" for i in range(20000))
    assert len(expected_out) > 3 * OUTPUT_LIMIT_BYTES
    assert len(expected_err) > 10 * OUTPUT_LIMIT_BYTES
    assert result.exit_code == 0
    assert len(result.stdout) == OUTPUT_LIMIT_BYTES == 65536
    assert result.stdout == expected_out[-65536:]
    assert result.stderr == expected_err[-65536:]


async def test_output_under_the_limit_is_whole(make_script: MakeScript) -> None:
    result = await run(make_script("small", "printf 'x%.0s' {1..65536}\n"))
    assert result.stdout == "x" * 65536


async def test_gigantic_output_stays_bounded(make_script: MakeScript) -> None:
    result = await run(make_script("flood", "head -c 50000000 /dev/zero\necho -n tail\n"))
    assert result.exit_code == 0
    assert result.stdout == "\0" * (65536 - 4) + "tail"


async def test_invalid_utf8_is_replaced(make_script: MakeScript) -> None:
    result = await run(make_script("bytes", "printf 'ok \\xff\\xfe end'\n"))
    assert result.stdout == "ok \ufffd\ufffd end"


async def test_a_script_killed_by_a_signal_on_its_own_is_not_a_timeout(
    make_script: MakeScript,
) -> None:
    result = await run(make_script("suicide", "kill -TERM $$\nsleep 5\n"))
    assert result.exit_code == -signal.SIGTERM
    assert (result.timed_out, result.killed_reason) == (False, None)


async def test_a_script_that_cannot_start_raises(tmp_path: Path) -> None:
    spec = ScriptSpec(name="gone", path=tmp_path / "gone.sh", description="")
    with pytest.raises(FileNotFoundError):
        await run(spec)


async def test_timeout_must_be_positive(registry: Registry) -> None:
    with pytest.raises(ValueError, match="timeout"):
        await run(registry.get("echo-args"), timeout=0)


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
    await _wait_gone(main_pid, child_pid)


async def test_timeout_argument_overrides_the_scripts_own(
    registry: Registry, env: dict[str, str], data_dir: Path, leftover_pids: list[int]
) -> None:
    result = await run(registry.get("slow-payment"), timeout=0.5, extra_env=env)
    leftover_pids.append(int((data_dir / "slow-child.pid").read_text()))
    assert (result.exit_code, result.timed_out) == (None, True)
    assert result.killed_reason == "timeout after 0.5s"
    assert result.duration_seconds < 2.0
    await _wait_gone(*leftover_pids)


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
    await _wait_gone(*leftover_pids)


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
    await _wait_gone(child_pid)


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
    assert not _gone(escapee)  # it really was out of reach, holding the pipes
    assert (result.exit_code, result.stdout) == (0, "bye\n")
    assert result.duration_seconds < PIPE_DRAIN_SECONDS + 2.0


async def test_cancellation_kills_the_group_and_reraises(
    registry: Registry, data_dir: Path, env: dict[str, str], leftover_pids: list[int]
) -> None:
    task = asyncio.ensure_future(run(registry.get("slow-payment"), timeout=60, extra_env=env))
    main_pid = await _read_pid(data_dir / "slow.pid")
    child_pid = await _read_pid(data_dir / "slow-child.pid")
    leftover_pids.extend([main_pid, child_pid])
    assert not _gone(main_pid) and not _gone(child_pid)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Killed and reaped before CancelledError came out: no waiting needed for the main.
    assert _gone(main_pid)
    await _wait_gone(child_pid)


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
            if process.environ().get("CANCEL_PROBE") == token and not _gone(process.pid):
                found.append(process.pid)
    return found


def _started(spec: ScriptSpec) -> bool:
    """Whether the test process has forked the script already."""
    return any(
        str(spec.path) in " ".join(child.cmdline())
        for child in psutil.Process().children()
        if not _gone(child.pid)
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
        await _wait_until((data_dir / marker).exists, f"{marker} written")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for name in ("main.pid", "child.pid"):
        if (data_dir / name).exists():
            leftover_pids.append(int((data_dir / name).read_text()))
    if (data_dir / "main.pid").exists():
        # Killed and reaped before CancelledError came out.
        assert _gone(int((data_dir / "main.pid").read_text()))
    # An orphaned child is reaped by init, in its own time.
    await _wait_until(lambda: not _probes(token), "every process of the run gone")


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
    assert _gone(main_pid)
    await _wait_gone(child_pid)
