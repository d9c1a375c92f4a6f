"""The script registry's header settings: ``# superscript.NAME: value`` comments near the
top of a script, read leniently (a bad value falls back to the default, with a warning)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from superscript.scripts import Registry
from superscript.scripts.registry import parse_header
from tests.scripts.conftest import MakeFile


def test_header_settings_are_read(empty_scripts_dir: Path, make_file: MakeFile) -> None:
    make_file(
        "pay.sh",
        "# superscript.description:   Collect one payment: the card on file  \n"
        "#superscript.timeout:2.5\n"
        "   #  superscript.max_attempts : 3\n"
        "set -euo pipefail\n",
    )
    spec = Registry(empty_scripts_dir).get("pay")
    assert spec.description == "Collect one payment: the card on file"
    assert spec.timeout_seconds == 2.5
    assert spec.max_attempts == 3


def test_defaults_without_header(empty_scripts_dir: Path, make_file: MakeFile) -> None:
    make_file("bare.sh", "echo no header\n")
    spec = Registry(empty_scripts_dir).get("bare")
    assert (spec.description, spec.timeout_seconds, spec.max_attempts) == ("", 60.0, 1)


@pytest.mark.parametrize("value", ["abc", "0", "-1", "nan", "inf", "", "30s", "1e999"])
def test_invalid_timeout_falls_back_to_default_with_a_warning(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="superscript.scripts.registry"):
        _, timeout, _ = parse_header(f"# superscript.timeout: {value}\n", source="t.sh")
    assert timeout == 60.0
    assert "superscript.timeout" in caplog.text
    assert "t.sh:1" in caplog.text


@pytest.mark.parametrize("value", ["0", "-2", "1.5", "+3", "1_0", "three", "", "٣"])
def test_invalid_max_attempts_falls_back_to_default_with_a_warning(
    value: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="superscript.scripts.registry"):
        _, _, attempts = parse_header(f"# superscript.max_attempts: {value}\n")
    assert attempts == 1
    assert "superscript.max_attempts" in caplog.text


def test_first_valid_value_wins() -> None:
    text = (
        "# superscript.timeout: bogus\n"
        "# superscript.timeout: 5\n"
        "# superscript.timeout: 9\n"
        "# superscript.max_attempts: 2\n"
        "# superscript.max_attempts: 4\n"
        "# superscript.description: first\n"
        "# superscript.description: second\n"
    )
    assert parse_header(text) == ("first", 5.0, 2)


def test_only_comment_lines_within_the_first_50_lines_count() -> None:
    filler = "echo filler\n" * 48
    inside = "#!/usr/bin/env bash\n" + filler + "# superscript.timeout: 5\n"
    assert parse_header(inside)[1] == 5.0  # line 50
    outside = "#!/usr/bin/env bash\n" + filler + "\n# superscript.timeout: 5\n"
    assert parse_header(outside)[1] == 60.0  # line 51
    assert parse_header('echo "# superscript.timeout: 5"\n')[1] == 60.0
    assert parse_header("x=1 # superscript.timeout: 5\n")[1] == 60.0


def test_only_the_first_64_kib_are_read(empty_scripts_dir: Path, make_file: MakeFile) -> None:
    make_file("big.sh", "#" + "x" * (64 * 1024) + "\n# superscript.timeout: 5\n")
    assert Registry(empty_scripts_dir).get("big").timeout_seconds == 60.0


def test_header_bytes_that_are_not_utf8_are_replaced(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("latin.sh", b"#!/bin/sh\n# superscript.description: caf\xe9 \xff\nexit 0\n")
    assert Registry(empty_scripts_dir).get("latin").description == "caf\ufffd \ufffd"


def test_unreadable_but_executable_script_gets_defaults(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    make_file("secret.sh", "# superscript.timeout: 5\n", mode=0o111)
    assert Registry(empty_scripts_dir).get("secret").timeout_seconds == 60.0


def test_an_invalid_header_warns_once_not_on_every_scan(
    empty_scripts_dir: Path, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    make_file("typo.sh", "# superscript.max_attempts: lots\n")
    registry = Registry(empty_scripts_dir)
    with caplog.at_level(logging.WARNING, logger="superscript.scripts.registry"):
        for _ in range(3):
            assert registry.get("typo").max_attempts == 1
            registry.list()
    assert len([r for r in caplog.records if "max_attempts" in r.getMessage()]) == 1
