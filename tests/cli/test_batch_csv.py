"""``superscript batch submit`` reading a CSV file: every bad line reported, nothing sent.

No server: where the command would send, nobody listens at its ``--api`` address, which
would be exit 1; a refused file is exit 2 before that.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from superscript.batches.csv_rows import CsvError
from superscript.cli import app
from superscript.cli.csv_file import parse_csv, repeats_note
from tests.cli.runner import FEE_HEADER
from tests.processes import free_port


def submit(tmp_path: Path, content: str | bytes, *args: str) -> Result:
    """``superscript batch submit`` of a file holding ``content``, to an API nobody
    listens at (``cannot reach the API``, exit 1, once the file is found good)."""
    csv_file = tmp_path / "batch.csv"
    if isinstance(content, str):
        csv_file.write_text(content)
    else:
        csv_file.write_bytes(content)
    api = f"http://127.0.0.1:{free_port()}"
    command = ["batch", "submit", str(csv_file), *args, "--api", api]
    return CliRunner().invoke(app, command, env={"COLUMNS": "300"})


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
    result = submit(tmp_path, content, *(["--script", script] if script is not None else []))

    assert result.exit_code == 2, result.output
    where = f"line {line}: " if line is not None else ""
    assert f"{where}" in result.output and reason in result.output, result.output
    assert "nothing was submitted" in result.output
    with pytest.raises(CsvError) as raised:
        parse_csv(content.encode(), script)
    assert raised.value.line == line


def test_a_fee_file_with_script_is_refused_by_its_header(tmp_path: Path, clean_env: None) -> None:
    """Not run as one failing script per row: exit 2, and nothing sent (nobody listens)."""
    content = FEE_HEADER + "".join(f"o{n},a1,{n + 1}\n" for n in range(2000))
    result = submit(tmp_path, content, "--script", "collect-payment")
    assert result.exit_code == 2, result.output
    assert "line 1: header 'order_id,account_id,amount' is a fee batch's header" in result.output
    assert "drop --script collect-payment" in result.output
    assert "nothing was submitted" in result.output


def test_every_bad_line_is_reported_up_to_100(tmp_path: Path, clean_env: None) -> None:
    rows = ["o1,a1,5", "o 2,a1,5", "o3,a1,5", "o4,a1,x", "o5,a/1,5", "o6,a1"]
    result = submit(tmp_path, FEE_HEADER + "\n".join(rows) + "\n")
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


def test_every_line_that_is_not_utf8_is_reported(clean_env: None) -> None:
    """Each line with a byte that is not UTF-8, beside the other bad lines, in line order;
    in a quoted cell that spans lines, the line the byte is on."""
    data = (
        FEE_HEADER.encode() + b"o1,caf\xe9,5\n" + b"o2,a1,x\n" + b"o3,a1,5\n" + b'o4,"a\n\xffb",5\n'
    )
    with pytest.raises(CsvError) as raised:
        parse_csv(data)
    assert [(p.line, p.reason) for p in raised.value.problems] == [
        (2, "not valid UTF-8 text"),
        (
            3,
            "amount 'x' is not a plain integer of minor units "
            "(digits only: no sign, decimal point or spaces)",
        ),
        (6, "not valid UTF-8 text"),
    ]
    with pytest.raises(CsvError) as raised:
        parse_csv(b"order_id,caf\xe9\no1,5\n", "s1")
    assert (raised.value.line, raised.value.reason) == (1, "not valid UTF-8 text")


def test_an_order_twice_with_other_values_is_a_bad_line(tmp_path: Path, clean_env: None) -> None:
    """The batch would fail the second as idempotency_key_reused: refused before, with both
    lines, beside the other bad lines; nothing is sent (nobody listens: that is exit 1)."""
    rows = ["o1,a1,5", "o2,a1,5", "o1,a1,6", "o3,a1,x", "o2,a2,5", "o1,a1,6"]
    result = submit(tmp_path, FEE_HEADER + "\n".join(rows) + "\n")
    assert result.exit_code == 2, result.output
    assert "4 bad lines" in result.output
    conflict = "is already on line {} with other values ({}): the batch would fail this line"
    for line in (
        "line 4: order_id 'o1' " + conflict.format(2, "amount"),
        "line 5: amount 'x'",
        "line 6: order_id 'o2' " + conflict.format(3, "account_id"),
        "line 7: order_id 'o1' " + conflict.format(2, "amount"),
    ):
        assert line in result.output, result.output
    assert "idempotency_key_reused" in result.output
    assert "nothing was submitted" in result.output

    with pytest.raises(CsvError) as raised:
        parse_csv(b"order_id,amount,currency\no1,5,EUR\no1,5,USD\n", "s1")
    assert raised.value.line == 3
    assert "order_id 'o1' is already on line 2 with other values (args)" in str(raised.value)


def test_a_line_repeated_exactly_is_noted_and_sent_as_is(tmp_path: Path, clean_env: None) -> None:
    """The batch applies it once and counts the repeat replayed: noted with its lines before
    anything is sent, and sent (here nobody listens: exit 1, after the note)."""
    content = FEE_HEADER + "o1,a1,5\no2,a1,5\no1,a1,5\n\no1,a1,05\n"
    batch = parse_csv(content.encode())
    assert [item["order_id"] for item in batch.items] == ["o1", "o2", "o1", "o1"]
    assert [(r.line, r.first, r.key, r.value) for r in batch.repeats] == [
        (4, 2, "order_id", "o1"),
        (6, 2, "order_id", "o1"),
    ]
    result = submit(tmp_path, content)
    assert result.exit_code == 1, result.output
    assert "note: 2 lines repeat an earlier line exactly:" in result.output
    assert "line 4: order_id 'o1' repeats line 2\nline 6: order_id 'o1' repeats line 2\n" in (
        result.output
    )
    assert "counts a repeat replayed" in result.output
    assert "cannot reach the API at http://127.0.0.1:" in result.output
    assert "nothing was submitted" not in result.output

    one = parse_csv(b"order_id,amount\no1,5\no1,5\n", "s1")
    assert len(one.items) == 2 and len(one.repeats) == 1
    many = parse_csv((FEE_HEADER + "o1,a1,5\n" * 150).encode())
    assert len(many.items) == 150 and len(many.repeats) == 101
    assert repeats_note(many.repeats).startswith(
        "more than 100 lines repeat an earlier line exactly; the first ones:\n"
        "line 3: order_id 'o1' repeats line 2\n"
    )


def test_not_utf8_is_refused_with_its_line(tmp_path: Path, clean_env: None) -> None:
    result = submit(tmp_path, FEE_HEADER.encode() + b"o1,a1,5\no2,caf\xe9,5\n")
    assert result.exit_code == 2
    assert "line 3: not valid UTF-8 text" in result.output


@pytest.mark.parametrize("option", ["--batch-id", "--script"])
def test_bad_batch_id_or_script_name_is_refused(
    tmp_path: Path, clean_env: None, option: str
) -> None:
    result = submit(tmp_path, "order_id\no1\n", option, "no spaces")
    assert result.exit_code == 2
    assert "'no spaces' is not 1 to 128 characters" in result.output


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
