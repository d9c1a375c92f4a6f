"""``superscript api`` refuses what the settings refuse (an exposed host without a token, a
bad naive delay) before it binds its port, and serves loopback until SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.processes import SUPERSCRIPT, free_port, service_env


def child_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """No caller variable, no Temporal config file of the user, and a wide console."""
    return service_env(
        TEMPORAL_CONFIG_FILE=str(tmp_path / "no-such-temporal.toml"), COLUMNS="200", **extra
    )


def accepts(port: int) -> bool:
    """Whether anything accepts a connection on ``port`` right now."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.05):
            return True
    except OSError:
        return False


def run_watching_port(
    args: list[str], env: dict[str, str], port: int, timeout: float
) -> tuple[subprocess.CompletedProcess[str], bool]:
    """Run the command until it exits, noting whether anything ever accepted on ``port``."""
    accepted = False
    with subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        deadline = time.monotonic() + timeout
        while proc.poll() is None and time.monotonic() < deadline:
            if accepts(port):
                accepted = True
            else:
                time.sleep(0.02)
        if proc.poll() is None:
            proc.kill()
        stdout, stderr = proc.communicate(timeout=10)
        return subprocess.CompletedProcess(args, proc.returncode, stdout, stderr), accepted


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_cli_refuses_an_exposed_host_without_token(tmp_path: Path, how: str) -> None:
    port = free_port()
    args = [str(SUPERSCRIPT), "api", "--port", str(port), "--data-dir", str(tmp_path / "data")]
    env = child_env(tmp_path)
    if how == "flag":
        args += ["--host", "0.0.0.0"]
    else:
        env["SUPERSCRIPT_HOST"] = "0.0.0.0"
    started = time.monotonic()

    result, accepted = run_watching_port(args, env, port, timeout=30)

    assert result.returncode not in (0, None), result
    assert time.monotonic() - started < 30
    assert "SUPERSCRIPT_API_TOKEN" in result.stdout + result.stderr
    assert not accepted, "the port was bound although the command refused"
    assert not (tmp_path / "data" / "ledger.db").exists()


def test_cli_refuses_an_exposed_host_with_a_blank_token(tmp_path: Path) -> None:
    port = free_port()
    args = [str(SUPERSCRIPT), "api", "--host", "0.0.0.0", "--port", str(port)]
    env = child_env(tmp_path, SUPERSCRIPT_API_TOKEN="  ", SUPERSCRIPT_DATA_DIR=str(tmp_path))
    result, accepted = run_watching_port(args, env, port, timeout=30)
    assert result.returncode not in (0, None), result
    assert "SUPERSCRIPT_API_TOKEN" in result.stdout + result.stderr
    assert not accepted


def test_cli_refuses_a_bad_naive_delay(tmp_path: Path) -> None:
    port = free_port()
    args = [str(SUPERSCRIPT), "api", "--port", str(port), "--data-dir", str(tmp_path)]
    env = child_env(tmp_path, SUPERSCRIPT_NAIVE_DELAY="2-1")
    result, accepted = run_watching_port(args, env, port, timeout=30)
    assert result.returncode not in (0, None), result
    assert "naive_delay" in result.stdout + result.stderr
    assert not accepted


def test_cli_serves_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    """The counterpart of the refusals: the same watch does see a bound port."""
    port = free_port()
    args = [str(SUPERSCRIPT), "api", "--port", str(port), "--data-dir", str(tmp_path)]
    with subprocess.Popen(
        args, env=child_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as proc:
        deadline = time.monotonic() + 30
        bound = False
        while not bound and proc.poll() is None and time.monotonic() < deadline:
            bound = accepts(port)
            if not bound:
                time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        try:
            output, _ = proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"superscript api ignored SIGTERM:\n{output}")
    assert bound, output
    assert proc.returncode == 0, output
