"""``superscript batch submit``: the CSV checked line by line before anything is sent.

Every refusal here exits 2 with nothing sent: the API address has nobody listening, where
sending would exit 1. ``test_batch`` submits to a real API and worker.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from superscript.batch_cli import CsvError, auth_headers, default_api_url, parse_csv
from superscript.cli import app
from superscript.settings import Settings
from tests.cli.runner import FEE_HEADER
from tests.processes import free_port


def submit_to_nobody(csv_file: Path, *options: str) -> Result:
    """``batch submit CSV_FILE OPTIONS`` to an API address where nobody listens."""
    args = ["batch", "submit", str(csv_file), *options, "--api", f"http://127.0.0.1:{free_port()}"]
    return CliRunner().invoke(app, args, env={"COLUMNS": "300"})


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
    result = submit_to_nobody(csv_file, *(["--script", script] if script is not None else []))

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
    result = submit_to_nobody(csv_file, "--script", "collect-payment")
    assert result.exit_code == 2, result.output
    assert "line 1: header 'order_id,account_id,amount' is a fee batch's header" in result.output
    assert "drop --script collect-payment" in result.output
    assert "nothing was submitted" in result.output


def test_every_bad_line_is_reported_up_to_100(tmp_path: Path, clean_env: None) -> None:
    rows = ["o1,a1,5", "o 2,a1,5", "o3,a1,5", "o4,a1,x", "o5,a/1,5", "o6,a1"]
    csv_file = tmp_path / "batch.csv"
    csv_file.write_text(FEE_HEADER + "\n".join(rows) + "\n")
    result = submit_to_nobody(csv_file)
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
    result = submit_to_nobody(csv_file)
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
