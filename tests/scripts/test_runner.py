"""The script runner, with real subprocesses: environment, argv, output caps, exit codes.

What timeouts and cancellations leave behind (nothing) is in ``test_runner_leftovers``.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import pytest

from superscript.scripts import Registry, ScriptSpec
from superscript.scripts.runner import ENV_ALLOW_LIST, OUTPUT_LIMIT_BYTES
from tests.scripts.conftest import MakeScript
from tests.scripts.runs import run

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
