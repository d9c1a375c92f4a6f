"""``superscript batch submit|status``: CSV checked line by line, then a real API and worker."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from superscript.batch_cli import CsvError, auth_headers, default_api_url, parse_csv
from superscript.cli import app
from superscript.ledger import Ledger
from superscript.settings import Settings
from tests.conftest import unique
from tests.processes import SUPERSCRIPT, free_port, service_env, start, wait_healthy

FEE_HEADER = "order_id,account_id,amount\n"


# --- validation: nothing is sent ----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "script", "line", "reason"),
    [
        (FEE_HEADER + "o1,a1,100\no2,a1,1.5\n", None, 3, "amount '1.5' is not a plain integer"),
        (FEE_HEADER + "o1,a1,-3\n", None, 2, "amount '-3' is not a plain integer"),
        (FEE_HEADER + "o1,a1,+3\n", None, 2, "amount '+3' is not a plain integer"),
        (FEE_HEADER + "o1,a1, 3\n", None, 2, "amount ' 3' is not a plain integer"),
        (FEE_HEADER + "o1,a1,1e3\n", None, 2, "amount '1e3' is not a plain integer"),
        (FEE_HEADER + "o1,a1,\n", None, 2, "amount empty is not a plain integer"),
        (FEE_HEADER + "o1,a1,0\n", None, 2, "amount 0 is outside 1 to 10^15"),
        (FEE_HEADER + "o1,a1,1000000000000001\n", None, 2, "is outside 1 to 10^15"),
        (FEE_HEADER + "o1,a1,5\no 2,a1,5\n", None, 3, "order_id 'o 2' is not 1 to 128"),
        (FEE_HEADER + "o1,a/1,5\n", None, 2, "account_id 'a/1' is not 1 to 128"),
        (FEE_HEADER + f"{'x' * 129},a1,5\n", None, 2, "is not 1 to 128 characters"),
        (FEE_HEADER + "o1,a1\n", None, 2, "2 columns where the header has 3 (missing"),
        (FEE_HEADER + "o1,a1,5,6\n", None, 2, "4 columns where the header has 3 (extra"),
        ("order,account_id,amount\no1,a1,5\n", None, 1, "is not 'order_id,account_id,amount'"),
        ("order_id,amount\no1,5\n", None, 1, "use --script NAME for a script batch"),
        (FEE_HEADER, None, None, "no rows after the header"),
        ("", None, None, "the file is empty"),
        (FEE_HEADER + 'o1,"a1,5\n', None, 2, "malformed CSV"),
        ("amount,order_id\n5,o1\n", "collect-payment", 1, "header starts with 'order_id'"),
        ("order_id,amount,currency\no1,5,EUR\no2,5\n", "collect-payment", 3, "missing columns"),
        ("order_id,amount\n\n\no1,5\n:(,5\n", "collect-payment", 5, "order_id ':('"),
    ],
)
def test_bad_rows_are_refused_with_their_line(
    tmp_path: Path,
    clean_env: None,
    content: str,
    script: str | None,
    line: int | None,
    reason: str,
) -> None:
    """Exit 2 and nothing sent: the API URL has nobody listening, which would be exit 1."""
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text(content)
    args = ["batch", "submit", str(csv_file), "--api", f"http://127.0.0.1:{free_port()}"]
    if script is not None:
        args += ["--script", script]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})

    assert result.exit_code == 2, result.output
    where = f"line {line}: " if line is not None else ""
    assert f"{where}" in result.output and reason in result.output, result.output
    assert "nothing was submitted" in result.output
    with pytest.raises(CsvError) as raised:
        parse_csv(content.encode(), script)
    assert raised.value.line == line


def test_a_fee_file_with_script_is_refused_by_its_header(tmp_path: Path, clean_env: None) -> None:
    """Not run as one failing script per row: exit 2, and nothing sent (nobody listens)."""
    csv_file = tmp_path / "fees.csv"
    csv_file.write_text(FEE_HEADER + "".join(f"o{n},a1,{n + 1}\n" for n in range(2000)))
    api = f"http://127.0.0.1:{free_port()}"
    args = ["batch", "submit", str(csv_file), "--script", "collect-payment", "--api", api]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert "line 1: header 'order_id,account_id,amount' is a fee batch's header" in result.output
    assert "drop --script collect-payment" in result.output
    assert "nothing was submitted" in result.output


def test_every_bad_line_is_reported_up_to_100(tmp_path: Path, clean_env: None) -> None:
    rows = ["o1,a1,5", "o 2,a1,5", "o3,a1,5", "o4,a1,x", "o5,a/1,5", "o6,a1"]
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text(FEE_HEADER + "\n".join(rows) + "\n")
    result = CliRunner().invoke(
        app,
        ["batch", "submit", str(csv_file), "--api", f"http://127.0.0.1:{free_port()}"],
        env={"COLUMNS": "300"},
    )
    assert result.exit_code == 2, result.output
    assert "4 bad lines" in result.output
    for line in ("line 3: order_id 'o 2'", "line 5: amount 'x'", "line 6: account_id 'a/1'"):
        assert line in result.output, result.output
    assert "line 7: 2 columns" in result.output
    assert "line 2:" not in result.output and "line 4:" not in result.output

    with pytest.raises(CsvError) as raised:
        parse_csv((FEE_HEADER + "bad id,a1,5\n" * 150).encode())
    assert raised.value.line == 2
    assert [problem.line for problem in raised.value.problems] == list(range(2, 102))
    assert "more than 100 bad lines" in str(raised.value)


def test_not_utf8_is_refused_with_its_line(tmp_path: Path, clean_env: None) -> None:
    csv_file = tmp_path / "batch.csv"
    csv_file.write_bytes(FEE_HEADER.encode() + b"o1,a1,5\no2,caf\xe9,5\n")
    result = CliRunner().invoke(
        app, ["batch", "submit", str(csv_file), "--api", f"http://127.0.0.1:{free_port()}"]
    )
    assert result.exit_code == 2
    assert "line 3: not valid UTF-8 text" in result.output


@pytest.mark.parametrize("option", ["--batch-id", "--script"])
def test_bad_batch_id_or_script_name_is_refused(
    tmp_path: Path, clean_env: None, option: str
) -> None:
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text("order_id\no1\n")
    result = CliRunner().invoke(
        app,
        ["batch", "submit", str(csv_file), option, "no spaces", "--api", "http://127.0.0.1:9"],
    )
    assert result.exit_code == 2
    assert "'no spaces' is not 1 to 128 characters" in result.output


def test_api_url_and_token_come_from_the_settings(clean_env: None) -> None:
    assert default_api_url(Settings(host="0.0.0.0", port=9000)) == "http://127.0.0.1:9000"
    assert default_api_url(Settings(host="::1", port=9000)) == "http://[::1]:9000"
    assert auth_headers(Settings(api_token=None)) == {}
    assert auth_headers(Settings(api_token="s3cret\n")) == {"Authorization": "Bearer s3cret"}


def test_parsing_and_the_default_batch_id() -> None:
    fee = parse_csv(b"\xef\xbb\xbf" + FEE_HEADER.encode() + b"o1,a1,0042\r\n\r\no:2,a.1,7\r\n")
    assert fee.kind == "fee" and fee.script is None
    assert fee.items == [
        {"order_id": "o1", "account_id": "a1", "amount": 42},
        {"order_id": "o:2", "account_id": "a.1", "amount": 7},
    ]
    # The ID follows the items, not the bytes: line endings and blank lines don't matter.
    same = parse_csv((FEE_HEADER + "o1,a1,42\no:2,a.1,7\n").encode())
    assert same.default_id() == fee.default_id()
    assert re.fullmatch(r"csv-[0-9a-f]{16}", fee.default_id())
    assert parse_csv((FEE_HEADER + "o1,a1,43\n").encode()).default_id() != fee.default_id()

    script = parse_csv(b'order_id,amount,note\no1,100,"two words, ""quoted"""\no2,5,\n', "s1")
    assert script.items == [
        {"order_id": "o1", "args": ["100", 'two words, "quoted"']},
        {"order_id": "o2", "args": ["5", ""]},
    ]
    assert script.body("b1") == {
        "batch_id": "b1",
        "kind": "script",
        "script": "s1",
        "items": script.items,
    }
    data = b"order_id,amount,note\no1,100,x\n"
    assert parse_csv(data, "s1").default_id() != parse_csv(data, "s2").default_id()

    # A quoted field may span lines: errors name the line where the row starts.
    with pytest.raises(CsvError) as raised:
        parse_csv(b'order_id,note\no1,"line one\nline two"\n\x00bad,x\n', "s1")
    assert raised.value.line == 4


# --- against a real API and worker -----------------------------------------------------------


@asynccontextmanager
async def running_stack(
    tmp_path: Path, temporal_address: str, settings: Settings
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """``superscript api`` and ``superscript worker`` as processes: the base URL and env."""
    port = free_port()
    env = service_env(
        TEMPORAL_ADDRESS=temporal_address,
        SUPERSCRIPT_DATABASE_URL=settings.database_url,
        SUPERSCRIPT_DATA_DIR=str(tmp_path),
        SUPERSCRIPT_TASK_QUEUE=settings.task_queue,
        SUPERSCRIPT_PORT=str(port),
        COLUMNS="160",
    )
    worker = start("worker", ["worker"], env, tmp_path)
    api = start("api", ["api"], env, tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_healthy(base, api)
        yield base, env
    finally:
        codes = [await api.terminate(), await worker.terminate()]
        assert codes == [0, 0], api.output() + worker.output()


async def superscript(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run ``superscript ARGS`` as a process: its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        str(SUPERSCRIPT),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 120)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def invoke(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the command in this process (quicker than a new one), off the event loop."""
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.output


def count(output: str, outcome: str) -> int:
    """The number in the counts table's row for ``outcome``."""
    found = re.search(rf"{outcome}\s*│\s*([\d,]+)", output)
    assert found, output
    return int(found.group(1).replace(",", ""))


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_submit_wait_status_against_real_processes(
    tmp_path: Path, temporal_address: str, settings: Settings, ledger: Ledger, clean_env: None
) -> None:
    rich, poor = unique("acc"), unique("acc")
    await ledger.create_account(rich, 1_000)
    await ledger.create_account(poor, 100)
    paid, o1, o2, o3 = (unique("order") for _ in range(4))
    fee_csv = tmp_path / "fees.csv"
    fee_csv.write_text(
        FEE_HEADER + f"{o1},{rich},300\n{o2},{rich},200\n{o3},{poor},500\n{paid},{rich},100\n"
    )

    async with running_stack(tmp_path, temporal_address, settings) as (base, env):
        async with httpx.AsyncClient(base_url=base, timeout=60) as http:
            before = await http.post(
                f"/orders/{paid}/fee", json={"account_id": rich, "amount": 100}
            )
            assert before.status_code == 200, before.text

        code, out = await superscript(env, "batch", "submit", str(fee_csv), "--wait", "--api", base)
        assert code == 0, out
        batch_id = re.search(r"batch (csv-[0-9a-f]{16}) accepted: 4 fee items", out)
        assert batch_id, out
        assert "4/4" in out
        counts = {name: count(out, name) for name in ("succeeded", "replayed", "failed", "pending")}
        assert counts == {"succeeded": 2, "replayed": 1, "failed": 1, "pending": 0}
        assert "insufficient_funds" in out  # the failed items are listed
        assert (await ledger.get_account(rich)).balance == 400
        assert (await ledger.get_account(poor)).balance == 100
        for order in (o1, o2, paid):
            assert await ledger.charges_for(order) == 1

        # The same file again is the same batch: nothing is charged twice.
        code, again = await invoke("batch", "submit", str(fee_csv), "--api", base)
        assert code == 0, again
        assert f"batch {batch_id.group(1)} accepted" in again
        code, status = await invoke("batch", "status", batch_id.group(1), "--api", base)
        assert code == 0, status
        assert [count(status, name) for name in ("succeeded", "replayed", "failed")] == [2, 1, 1]
        assert "completed" in status
        assert (await ledger.get_account(rich)).balance == 400

        # Its ID with other items: the API's problem, as code: detail.
        other = tmp_path / "other.csv"
        other.write_text(FEE_HEADER + f"{unique('order')},{rich},1\n")
        code, out = await invoke(
            "batch", "submit", str(other), "--batch-id", batch_id.group(1), "--api", base
        )
        assert code == 1 and "idempotency_key_reused: " in out, out

        # A bad row: nothing at all reaches the API, not even the good rows before it.
        refused_id = unique("batch")
        bad = tmp_path / "bad.csv"
        bad.write_text(FEE_HEADER + f"{unique('order')},{rich},5\n{unique('order')},{rich},1.5\n")
        code, out = await invoke(
            "batch", "submit", str(bad), "--batch-id", refused_id, "--api", base
        )
        assert code == 2 and "line 3: amount '1.5'" in out, out
        # ... so there is no such batch: status says so with the problem's code.
        code, out = await invoke("batch", "status", refused_id, "--api", base)
        assert code == 1 and f"batch_not_found: no batch '{refused_id}'" in out, out

        # A script batch: order_id then the script's arguments.
        script_csv = tmp_path / "payments.csv"
        s1, s2 = unique("order"), unique("order")
        script_csv.write_text(f"order_id,amount,currency\n{s1},100,EUR\n{s2},250,USD\n")
        code, out = await superscript(
            env,
            "batch",
            "submit",
            str(script_csv),
            "--script",
            "collect-payment",
            "--wait",
            "--api",
            base,
        )
        assert code == 0, out
        assert [count(out, name) for name in ("succeeded", "replayed", "failed")] == [2, 0, 0]
        lines = (tmp_path / "payments.log").read_text().splitlines()
        assert sorted(line.split()[1:4] for line in lines) == sorted(
            [[s1, "100", "EUR"], [s2, "250", "USD"]]
        )

        # Without --api: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT.
        port = base.rsplit(":", 1)[1]
        code, out = await invoke(
            "batch", "submit", str(script_csv), "--script", "nope", env={"SUPERSCRIPT_PORT": port}
        )
        assert code == 1 and "script_not_found: " in out, out
