"""The script registry: what counts as a script, its name, and that a caller's name can
never reach a file outside the scripts dir. Header settings: ``test_registry_headers``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from superscript.scripts import BUNDLED_SCRIPTS_DIR, Registry, ScriptNotFound, ScriptSpec
from tests.scripts.conftest import MakeFile


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


def test_name_is_file_name_without_last_extension(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    for file_name in ["collect-payment.sh", "b.py", "plain", "d.tar.gz", "ns:job_1.sh", "v1.2"]:
        make_file(file_name)
    registry = Registry(empty_scripts_dir)
    assert names(registry) == ["b", "collect-payment", "d.tar", "ns:job_1", "plain", "v1"]
    assert registry.get("d.tar").path == empty_scripts_dir.resolve() / "d.tar.gz"


def test_names_outside_the_identifier_alphabet_are_not_scripts(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("with space.sh")
    make_file("ünïcode.sh")
    make_file("semi;colon.sh")
    make_file("x" * 129 + ".sh")
    make_file("x" * 128 + ".sh")
    assert names(Registry(empty_scripts_dir)) == ["x" * 128]


def test_two_files_with_one_name_first_sorted_file_name_wins(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("pay.sh", "# superscript.description: from sh\n")
    make_file("pay.py", "# superscript.description: from py\n")
    make_file("pay", "# superscript.description: bare\n")
    registry = Registry(empty_scripts_dir)
    assert names(registry) == ["pay"]
    assert registry.get("pay").description == "bare"
    (empty_scripts_dir / "pay").unlink()
    assert registry.get("pay").description == "from py"


def test_a_non_executable_duplicate_does_not_hide_an_executable_one(
    empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("pay.py", mode=0o644)
    make_file("pay.sh")
    assert Registry(empty_scripts_dir).get("pay").path.name == "pay.sh"


# --- what is not a script -------------------------------------------------------------


def test_only_executable_regular_files_directly_inside(
    tmp_path: Path, empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    make_file("ok.sh")
    make_file("not-executable.sh", mode=0o644)
    make_file(".hidden.sh")
    make_file(".env")
    sub = empty_scripts_dir / "sub"
    sub.mkdir(mode=0o755)  # an "executable" directory is still not a script
    make_file("nested.sh", directory=sub)
    os.mkfifo(empty_scripts_dir / "fifo.sh")
    os.chmod(empty_scripts_dir / "fifo.sh", 0o755)
    assert names(Registry(empty_scripts_dir)) == ["ok"]


def test_symlinks_count_only_when_they_stay_inside(
    tmp_path: Path, empty_scripts_dir: Path, make_file: MakeFile
) -> None:
    outside = make_file("outside.sh", directory=tmp_path)
    make_file("real.sh")
    sub = empty_scripts_dir / "sub"
    sub.mkdir()
    make_file("deep.sh", directory=sub)
    (empty_scripts_dir / "escape.sh").symlink_to(outside)
    (empty_scripts_dir / "escape-relative.sh").symlink_to(Path("..") / "outside.sh")
    (empty_scripts_dir / "alias.sh").symlink_to("real.sh")
    (empty_scripts_dir / "into-sub.sh").symlink_to(sub / "deep.sh")
    (empty_scripts_dir / "dangling.sh").symlink_to(empty_scripts_dir / "nowhere.sh")
    (empty_scripts_dir / "loop.sh").symlink_to(empty_scripts_dir / "loop.sh")
    (empty_scripts_dir / "dir-link").symlink_to(sub)
    registry = Registry(empty_scripts_dir)
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
    tmp_path: Path, empty_scripts_dir: Path, make_file: MakeFile, name: str
) -> None:
    # Bait that a path built from the name would find.
    make_file("ok.sh")
    make_file("outside", directory=tmp_path)
    (empty_scripts_dir / "sub").mkdir()
    make_file("nested", directory=empty_scripts_dir / "sub")
    (empty_scripts_dir / "a").mkdir()
    make_file("b", directory=empty_scripts_dir / "a")
    registry = Registry(empty_scripts_dir)
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


def test_directory_is_rescanned_on_every_call(empty_scripts_dir: Path, make_file: MakeFile) -> None:
    registry = Registry(empty_scripts_dir)
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
