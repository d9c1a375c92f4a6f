"""The script registry: what counts as a script, its name, its header settings, and that a
caller's name can never reach a file outside the scripts dir."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import ValidationError

from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry, ScriptNotFound, ScriptSpec
from superscript.scripts.registry import parse_header

MakeFile = Callable[..., Path]


@pytest.fixture
def scripts_dir(tmp_path: Path) -> Path:
    """Empty here (not the script tests' usual dir): each test writes every file it needs."""
    path = tmp_path / "scripts"
    path.mkdir()
    return path


@pytest.fixture
def make_file(scripts_dir: Path) -> MakeFile:
    """Write an executable (by default) file into the scripts dir."""

    def make(
        file_name: str,
        body: str | bytes = "echo hi\n",
        *,
        mode: int = 0o755,
        directory: Path | None = None,
    ) -> Path:
        path = (directory or scripts_dir) / file_name
        data = body if isinstance(body, bytes) else ("#!/usr/bin/env bash\n" + body).encode()
        path.write_bytes(data)
        path.chmod(mode)
        return path

    return make


def names(registry: Registry) -> list[str]:
    return [spec.name for spec in registry.list()]


# --- the bundled examples -------------------------------------------------------------


def test_bundled_scripts_are_registered_with_their_settings() -> None:
    registry = Registry(BUNDLED_SCRIPTS_DIR)
    assert names(registry) == [
        "collect-payment",
        "echo-args",
        "fail-payment",
        "refund-payment",
        "slow-payment",
    ]
    collect = registry.get("collect-payment")
    assert collect.path == BUNDLED_SCRIPTS_DIR / "collect-payment.sh"
    assert collect.description.startswith("Collect one payment from the card on file")
    assert (collect.timeout_seconds, collect.max_attempts) == (30.0, 1)
    assert registry.get("echo-args").timeout_seconds == 10.0
    assert registry.get("slow-payment").timeout_seconds == 2.0
    for spec in registry.list():
        assert os.access(spec.path, os.X_OK), spec.path
        assert spec.description


# --- names ----------------------------------------------------------------------------


def test_name_is_file_name_without_last_extension(scripts_dir: Path, make_file: MakeFile) -> None:
    for file_name in ["collect-payment.sh", "b.py", "plain", "d.tar.gz", "ns:job_1.sh", "v1.2"]:
        make_file(file_name)
    registry = Registry(scripts_dir)
    assert names(registry) == ["b", "collect-payment", "d.tar", "ns:job_1", "plain", "v1"]
    assert registry.get("d.tar").path == scripts_dir.resolve() / "d.tar.gz"


def test_names_outside_the_identifier_alphabet_are_not_scripts(
    scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("with space.sh")
    make_file("ünïcode.sh")
    make_file("semi;colon.sh")
    make_file("x" * 129 + ".sh")
    make_file("x" * 128 + ".sh")
    assert names(Registry(scripts_dir)) == ["x" * 128]


def test_two_files_with_one_name_first_sorted_file_name_wins(
    scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("pay.sh", "# superscript.description: from sh\n")
    make_file("pay.py", "# superscript.description: from py\n")
    make_file("pay", "# superscript.description: bare\n")
    registry = Registry(scripts_dir)
    assert names(registry) == ["pay"]
    assert registry.get("pay").description == "bare"
    (scripts_dir / "pay").unlink()
    assert registry.get("pay").description == "from py"


def test_a_non_executable_duplicate_does_not_hide_an_executable_one(
    scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("pay.py", mode=0o644)
    make_file("pay.sh")
    assert Registry(scripts_dir).get("pay").path.name == "pay.sh"


# --- what is not a script -------------------------------------------------------------


def test_only_executable_regular_files_directly_inside(
    tmp_path: Path, scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("ok.sh")
    make_file("not-executable.sh", mode=0o644)
    make_file(".hidden.sh")
    make_file(".env")
    sub = scripts_dir / "sub"
    sub.mkdir(mode=0o755)  # an "executable" directory is still not a script
    make_file("nested.sh", directory=sub)
    os.mkfifo(scripts_dir / "fifo.sh")
    os.chmod(scripts_dir / "fifo.sh", 0o755)
    assert names(Registry(scripts_dir)) == ["ok"]


def test_symlinks_count_only_when_they_stay_inside(
    tmp_path: Path, scripts_dir: Path, make_file: MakeFile
) -> None:
    outside = make_file("outside.sh", directory=tmp_path)
    make_file("real.sh")
    sub = scripts_dir / "sub"
    sub.mkdir()
    make_file("deep.sh", directory=sub)
    (scripts_dir / "escape.sh").symlink_to(outside)
    (scripts_dir / "escape-relative.sh").symlink_to(Path("..") / "outside.sh")
    (scripts_dir / "alias.sh").symlink_to("real.sh")
    (scripts_dir / "into-sub.sh").symlink_to(sub / "deep.sh")
    (scripts_dir / "dangling.sh").symlink_to(scripts_dir / "nowhere.sh")
    (scripts_dir / "loop.sh").symlink_to(scripts_dir / "loop.sh")
    (scripts_dir / "dir-link").symlink_to(sub)
    registry = Registry(scripts_dir)
    assert names(registry) == ["alias", "into-sub", "real"]
    for name in ["escape", "escape-relative", "dangling", "loop", "dir-link", "outside"]:
        with pytest.raises(ScriptNotFound):
            registry.get(name)


def test_scripts_dir_reached_through_a_symlink(tmp_path: Path, make_file: MakeFile) -> None:
    make_file("real.sh")
    (tmp_path / "scripts-link").symlink_to(tmp_path / "scripts")
    (tmp_path / "scripts" / "alias.sh").symlink_to(tmp_path / "scripts-link" / "real.sh")
    assert names(Registry(tmp_path / "scripts-link")) == ["alias", "real"]


@pytest.mark.parametrize(
    "name",
    [
        "..",
        ".",
        "../etc/passwd",
        "%2e%2e%2f",
        "..%2f",
        "%2e%2e",
        "a/b",
        "a\\b",
        "/etc/passwd",
        "ok\x00",
        "",
        "x" * 129,
        "sub/nested",
        "../outside",
        "ok.sh",
        "OK",
    ],
)
def test_get_never_resolves_a_name_against_the_filesystem(
    tmp_path: Path, scripts_dir: Path, make_file: MakeFile, name: str
) -> None:
    # Bait that a path built from the name would find.
    make_file("ok.sh")
    make_file("outside", directory=tmp_path)
    (scripts_dir / "sub").mkdir()
    make_file("nested", directory=scripts_dir / "sub")
    (scripts_dir / "a").mkdir()
    make_file("b", directory=scripts_dir / "a")
    registry = Registry(scripts_dir)
    with pytest.raises(ScriptNotFound) as info:
        registry.get(name)
    assert info.value.code == "script_not_found"
    assert info.value.name == name
    assert repr(name) in str(info.value)
    assert isinstance(info.value, LookupError)


def test_missing_scripts_dir_has_no_scripts(tmp_path: Path) -> None:
    registry = Registry(tmp_path / "nope")
    assert registry.list() == []
    with pytest.raises(ScriptNotFound):
        registry.get("collect-payment")


def test_directory_is_rescanned_on_every_call(scripts_dir: Path, make_file: MakeFile) -> None:
    registry = Registry(scripts_dir)
    assert registry.list() == []
    path = make_file("late.sh", "# superscript.timeout: 5\n")
    assert registry.get("late").timeout_seconds == 5.0
    make_file("late.sh", "# superscript.timeout: 7.5\n# more text\n")
    assert registry.get("late").timeout_seconds == 7.5
    path.chmod(0o644)
    assert names(registry) == []
    path.unlink()
    with pytest.raises(ScriptNotFound):
        registry.get("late")


def test_spec_is_frozen() -> None:
    spec = ScriptSpec(name="x", path=Path("/x"), description="")
    assert (spec.timeout_seconds, spec.max_attempts) == (60.0, 1)
    with pytest.raises(ValidationError):
        spec.max_attempts = 5  # type: ignore[misc]


# --- header settings ------------------------------------------------------------------


def test_header_settings_are_read(scripts_dir: Path, make_file: MakeFile) -> None:
    make_file(
        "pay.sh",
        "# superscript.description:   Collect one payment: the card on file  \n"
        "#superscript.timeout:2.5\n"
        "   #  superscript.max_attempts : 3\n"
        "set -euo pipefail\n",
    )
    spec = Registry(scripts_dir).get("pay")
    assert spec.description == "Collect one payment: the card on file"
    assert spec.timeout_seconds == 2.5
    assert spec.max_attempts == 3


def test_defaults_without_header(scripts_dir: Path, make_file: MakeFile) -> None:
    make_file("bare.sh", "echo no header\n")
    spec = Registry(scripts_dir).get("bare")
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


def test_only_the_first_64_kib_are_read(scripts_dir: Path, make_file: MakeFile) -> None:
    make_file("big.sh", "#" + "x" * (64 * 1024) + "\n# superscript.timeout: 5\n")
    assert Registry(scripts_dir).get("big").timeout_seconds == 60.0


def test_header_bytes_that_are_not_utf8_are_replaced(
    scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("latin.sh", b"#!/bin/sh\n# superscript.description: caf\xe9 \xff\nexit 0\n")
    assert Registry(scripts_dir).get("latin").description == "caf\ufffd \ufffd"


def test_unreadable_but_executable_script_gets_defaults(
    scripts_dir: Path, make_file: MakeFile
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads any file")
    make_file("secret.sh", "# superscript.timeout: 5\n", mode=0o111)
    assert Registry(scripts_dir).get("secret").timeout_seconds == 60.0


def test_an_invalid_header_warns_once_not_on_every_scan(
    scripts_dir: Path, make_file: MakeFile, caplog: pytest.LogCaptureFixture
) -> None:
    make_file("typo.sh", "# superscript.max_attempts: lots\n")
    registry = Registry(scripts_dir)
    with caplog.at_level(logging.WARNING, logger="superscript.scripts.registry"):
        for _ in range(3):
            assert registry.get("typo").max_attempts == 1
            registry.list()
    assert len([r for r in caplog.records if "max_attempts" in r.getMessage()]) == 1
