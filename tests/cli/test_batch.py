"""``superscript batch submit|status`` against a real API and worker, as processes.

How a file is checked before anything is sent: ``test_batch_csv``.
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from superscript.cli.http import auth_headers, default_api_url
from superscript.ledger import Ledger
from superscript.settings import Settings
from tests.cli.runner import FEE_HEADER, invoke
from tests.commands import run_command
from tests.conftest import StartApiAndWorker, unique


def test_api_url_and_token_come_from_the_settings(clean_env: None) -> None:
    assert default_api_url(Settings(host="0.0.0.0", port=9000)) == "http://127.0.0.1:9000"
    assert default_api_url(Settings(host="::1", port=9000)) == "http://[::1]:9000"
    assert auth_headers(Settings(api_token=None)) == {}
    assert auth_headers(Settings(api_token="s3cret\n")) == {"Authorization": "Bearer s3cret"}


def count(output: str, outcome: str) -> int:
    """The number in the counts table's row for ``outcome``."""
    found = re.search(rf"{outcome}\s*│\s*([\d,]+)", output)
    assert found, output
    return int(found.group(1).replace(",", ""))


async def submit_fees_and_wait(
    env: dict[str, str], base: str, fee_csv: Path, ledger: Ledger, rich: str, poor: str
) -> str:
    """The fee file with ``--wait``: counts as they end, the money moved once; its batch ID."""
    code, out = await run_command(env, "batch", "submit", str(fee_csv), "--wait", "--api", base)
    assert code == 1, out  # one item failed: --wait exits non-zero (the contract)
    batch_id = re.search(r"batch (csv-[0-9a-f]{16}) accepted: 4 fee items", out)
    assert batch_id, out
    assert "4/4" in out
    counts = {name: count(out, name) for name in ("succeeded", "replayed", "failed", "pending")}
    assert counts == {"succeeded": 2, "replayed": 1, "failed": 1, "pending": 0}
    assert "insufficient_funds" in out  # the failed items are listed
    assert (await ledger.get_account(rich)).balance == 400
    assert (await ledger.get_account(poor)).balance == 100
    return batch_id.group(1)


async def submit_the_same_file_again(
    base: str, fee_csv: Path, batch_id: str, ledger: Ledger, rich: str
) -> None:
    """The same file again is the same batch: nothing is charged twice."""
    code, again = await invoke("batch", "submit", str(fee_csv), "--api", base)
    assert code == 0, again
    assert f"batch {batch_id} accepted" in again
    code, status = await invoke("batch", "status", batch_id, "--api", base)
    assert code == 0, status
    assert [count(status, name) for name in ("succeeded", "replayed", "failed")] == [2, 1, 1]
    assert "completed" in status
    assert (await ledger.get_account(rich)).balance == 400


async def submit_what_is_refused(tmp_path: Path, base: str, batch_id: str, rich: str) -> None:
    """The batch's ID with other items, and a file with a bad row."""
    # Its ID with other items: the API's problem, as code: detail.
    other = tmp_path / "other.csv"
    other.write_text(FEE_HEADER + f"{unique('order')},{rich},1\n")
    code, out = await invoke("batch", "submit", str(other), "--batch-id", batch_id, "--api", base)
    assert code == 1 and "idempotency_key_reused: " in out, out

    # A bad row: nothing at all reaches the API, not even the good rows before it.
    refused_id = unique("batch")
    bad = tmp_path / "bad.csv"
    bad.write_text(FEE_HEADER + f"{unique('order')},{rich},5\n{unique('order')},{rich},1.5\n")
    code, out = await invoke("batch", "submit", str(bad), "--batch-id", refused_id, "--api", base)
    assert code == 2 and "line 3: amount '1.5'" in out, out
    # ... so there is no such batch: status says so with the problem's code.
    code, out = await invoke("batch", "status", refused_id, "--api", base)
    assert code == 1 and f"batch_not_found: no batch '{refused_id}'" in out, out


async def submit_scripts_and_wait(tmp_path: Path, env: dict[str, str], base: str) -> Path:
    """A script batch: order_id then the script's arguments, each run once. Its file."""
    script_csv = tmp_path / "payments.csv"
    s1, s2 = unique("order"), unique("order")
    script_csv.write_text(f"order_id,amount,currency\n{s1},100,EUR\n{s2},250,USD\n")
    options = ["--script", "collect-payment", "--wait", "--api", base]
    code, out = await run_command(env, "batch", "submit", str(script_csv), *options)
    assert code == 0, out
    assert [count(out, name) for name in ("succeeded", "replayed", "failed")] == [2, 0, 0]
    lines = (tmp_path / "payments.log").read_text().splitlines()
    assert sorted(line.split()[1:4] for line in lines) == sorted(
        [[s1, "100", "EUR"], [s2, "250", "USD"]]
    )
    return script_csv


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_submit_wait_status_against_real_processes(
    tmp_path: Path, api_and_worker: StartApiAndWorker, ledger: Ledger, clean_env: None
) -> None:
    rich, poor = unique("acc"), unique("acc")
    await ledger.create_account(rich, 1_000)
    await ledger.create_account(poor, 100)
    paid, o1, o2, o3 = (unique("order") for _ in range(4))
    fee_csv = tmp_path / "fees.csv"
    fee_csv.write_text(
        FEE_HEADER + f"{o1},{rich},300\n{o2},{rich},200\n{o3},{poor},500\n{paid},{rich},100\n"
    )
    stack = await api_and_worker(COLUMNS="160")
    base, env = stack.base_url, stack.env
    async with httpx.AsyncClient(base_url=base, timeout=60) as http:
        before = await http.post(f"/orders/{paid}/fee", json={"account_id": rich, "amount": 100})
        assert before.status_code == 200, before.text

    batch_id = await submit_fees_and_wait(env, base, fee_csv, ledger, rich, poor)
    for order in (o1, o2, paid):
        assert await ledger.charges_for(order) == 1
    await submit_the_same_file_again(base, fee_csv, batch_id, ledger, rich)
    await submit_what_is_refused(tmp_path, base, batch_id, rich)
    script_csv = await submit_scripts_and_wait(tmp_path, env, base)

    # Without --api: http://SUPERSCRIPT_HOST:SUPERSCRIPT_PORT.
    port = base.rsplit(":", 1)[1]
    code, out = await invoke(
        "batch", "submit", str(script_csv), "--script", "nope", env={"SUPERSCRIPT_PORT": port}
    )
    assert code == 1 and "script_not_found: " in out, out
    codes = await stack.stop()
    assert list(codes.values()) == [0, 0], stack.logs()
