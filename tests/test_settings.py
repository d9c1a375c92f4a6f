"""Settings: the contract's defaults, SUPERSCRIPT_* variables, flags on top, exposure.

The Temporal connection they lead to is in ``temporal/test_client``; ``superscript api``
refusing what they refuse, in ``cli/test_api_command``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from superscript.settings import BUNDLED_SCRIPTS_DIR, load_settings


def test_defaults_match_the_contract(isolated: Path) -> None:
    settings = load_settings()

    assert settings.host == "127.0.0.1"
    assert settings.port == 8000
    assert settings.data_dir == Path(".superscript")
    assert settings.database_url == "sqlite:///.superscript/ledger.db"
    assert settings.scripts_dir == BUNDLED_SCRIPTS_DIR
    assert settings.temporal_port == 7233
    assert settings.temporal_ui_port == 8233
    assert settings.task_queue == "superscript"
    assert settings.naive_delay == (0.2, 2.0)
    assert settings.api_token is None
    assert settings.result_wait_seconds == 30.0
    assert settings.host_is_loopback
    assert settings.temporal_embedded
    settings.check_exposure()


def test_unset_flags_leave_the_defaults(isolated: Path) -> None:
    """The CLI passes None for every flag not given."""
    flags: dict[str, Any] = dict.fromkeys(
        ("host", "port", "data_dir", "database_url", "scripts_dir", "task_queue")
    )
    assert load_settings(**flags) == load_settings()


def test_database_url_follows_the_data_dir(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SUPERSCRIPT_DATA_DIR", "/srv/superscript")
    assert load_settings().database_url == "sqlite:////srv/superscript/ledger.db"
    assert load_settings(data_dir=Path("flagdir")).database_url == "sqlite:///flagdir/ledger.db"
    given = load_settings(data_dir=Path("flagdir"), database_url="postgresql://db/x")
    assert given.database_url == "postgresql://db/x"


ENVIRONMENT: list[tuple[str, str, str, Any]] = [
    ("SUPERSCRIPT_HOST", "0.0.0.0", "host", "0.0.0.0"),
    ("SUPERSCRIPT_PORT", "9001", "port", 9001),
    ("SUPERSCRIPT_DATA_DIR", "/srv/ss", "data_dir", Path("/srv/ss")),
    (
        "SUPERSCRIPT_DATABASE_URL",
        "postgresql://u@h:5432/l",
        "database_url",
        "postgresql://u@h:5432/l",
    ),
    ("SUPERSCRIPT_SCRIPTS_DIR", "/opt/scripts", "scripts_dir", Path("/opt/scripts")),
    ("SUPERSCRIPT_TEMPORAL_PORT", "7300", "temporal_port", 7300),
    ("SUPERSCRIPT_TEMPORAL_UI_PORT", "8300", "temporal_ui_port", 8300),
    ("SUPERSCRIPT_TASK_QUEUE", "payments", "task_queue", "payments"),
    ("SUPERSCRIPT_NAIVE_DELAY", "0.1-0.3", "naive_delay", (0.1, 0.3)),
    ("SUPERSCRIPT_RESULT_WAIT_SECONDS", "5", "result_wait_seconds", 5.0),
]


@pytest.mark.parametrize(("variable", "value", "name", "expected"), ENVIRONMENT)
def test_each_variable_is_read(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    name: str,
    expected: Any,
) -> None:
    monkeypatch.setenv(variable, value)
    assert getattr(load_settings(), name) == expected


def test_token_variable_is_read_and_kept_secret(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", "s3cret")
    settings = load_settings()
    assert settings.api_token is not None
    assert settings.api_token.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings) and "s3cret" not in str(settings)
    assert "s3cret" not in settings.model_dump_json()


@pytest.mark.parametrize("value", ["", " ", "\n", " \t "])
def test_blank_token_means_none(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", value)
    assert load_settings().api_token is None
    assert load_settings(api_token=value).api_token is None


def test_token_whitespace_is_no_part_of_it(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`SUPERSCRIPT_API_TOKEN=$(cat file)` may carry a newline no client can send."""
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", " s3cret\n")
    token = load_settings().api_token
    assert token is not None and token.get_secret_value() == "s3cret"


FLAGS: list[tuple[str, str, Any, Any]] = [
    ("host", "SUPERSCRIPT_HOST", "10.1.1.1", "10.2.2.2"),
    ("port", "SUPERSCRIPT_PORT", "9001", 9002),
    ("data_dir", "SUPERSCRIPT_DATA_DIR", "/env", Path("/flag")),
    ("database_url", "SUPERSCRIPT_DATABASE_URL", "sqlite:///env.db", "sqlite:///flag.db"),
    ("scripts_dir", "SUPERSCRIPT_SCRIPTS_DIR", "/env-scripts", Path("/flag-scripts")),
    ("temporal_port", "SUPERSCRIPT_TEMPORAL_PORT", "7301", 7302),
    ("temporal_ui_port", "SUPERSCRIPT_TEMPORAL_UI_PORT", "8301", 8302),
    ("task_queue", "SUPERSCRIPT_TASK_QUEUE", "env-queue", "flag-queue"),
    ("naive_delay", "SUPERSCRIPT_NAIVE_DELAY", "1-2", (0.0, 0.0)),
]


@pytest.mark.parametrize(("name", "variable", "env_value", "flag_value"), FLAGS)
def test_flag_wins_over_the_environment(
    isolated: Path,
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    variable: str,
    env_value: str,
    flag_value: Any,
) -> None:
    monkeypatch.setenv(variable, env_value)
    assert getattr(load_settings(**{name: flag_value}), name) == flag_value
    # A flag not given (None) leaves the variable in force.
    assert getattr(load_settings(**{name: None}), name) != flag_value


def test_token_flag_wins_over_the_environment(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", "from-env")
    token = load_settings(api_token="from-flag").api_token
    assert token is not None and token.get_secret_value() == "from-flag"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0.5", (0.5, 0.5)),
        ("2", (2.0, 2.0)),
        ("0.1-0.3", (0.1, 0.3)),
        ("0-0", (0.0, 0.0)),
        ("0.2-2.0", (0.2, 2.0)),
        (" 0.2 - 2.0 ", (0.2, 2.0)),
        ("1.5-1.5", (1.5, 1.5)),
    ],
)
def test_naive_delay_parsing(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, value: str, expected: tuple[float, float]
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_NAIVE_DELAY", value)
    assert load_settings().naive_delay == expected
    monkeypatch.delenv("SUPERSCRIPT_NAIVE_DELAY")
    assert load_settings(naive_delay=value).naive_delay == expected


@pytest.mark.parametrize(
    "value",
    [
        "",
        "-",
        "abc",
        "0.3-0.1",
        "-1",
        "1-",
        "-1-2",
        "1-2-3",
        "1,2",
        "0.1..0.3",
        "nan",
        "inf",
        "0.1-inf",
        "nan-nan",
        "[0.1, 0.3]",
    ],
)
def test_bad_naive_delay_is_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_NAIVE_DELAY", value)
    with pytest.raises(ValidationError, match="naive_delay"):
        load_settings()


@pytest.mark.parametrize(
    "value", [(1.0, 0.5), (-0.1, 1.0), (float("nan"), 1.0), (0.0, float("inf"))]
)
def test_bad_naive_delay_tuple_is_refused(isolated: Path, value: tuple[float, float]) -> None:
    with pytest.raises(ValidationError, match="naive_delay"):
        load_settings(naive_delay=value)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SUPERSCRIPT_PORT", "http"),
        ("SUPERSCRIPT_PORT", "70000"),
        ("SUPERSCRIPT_PORT", "-1"),
        ("SUPERSCRIPT_TEMPORAL_PORT", "0"),
        ("SUPERSCRIPT_TEMPORAL_UI_PORT", "65536"),
        ("SUPERSCRIPT_RESULT_WAIT_SECONDS", "0"),
    ],
)
def test_bad_numbers_are_refused(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError):
        load_settings()


LOOPBACK = ["127.0.0.1", "127.0.0.2", "localhost", "::1"]
EXPOSED = ["0.0.0.0", "::", "", "10.0.0.1", "192.168.1.10", "203.0.113.7", "example.com"]


@pytest.mark.parametrize("host", LOOPBACK)
def test_loopback_needs_no_token(isolated: Path, host: str) -> None:
    settings = load_settings(host=host)
    assert settings.host_is_loopback
    settings.check_exposure()


@pytest.mark.parametrize("host", EXPOSED)
def test_exposed_host_without_token_is_refused(isolated: Path, host: str) -> None:
    settings = load_settings(host=host)
    assert not settings.host_is_loopback
    with pytest.raises(ValueError, match="SUPERSCRIPT_API_TOKEN"):
        settings.check_exposure()


@pytest.mark.parametrize("host", EXPOSED)
def test_exposed_host_with_token_is_allowed(
    isolated: Path, monkeypatch: pytest.MonkeyPatch, host: str
) -> None:
    load_settings(host=host, api_token=SecretStr("s3cret")).check_exposure()
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", "s3cret")
    load_settings(host=host).check_exposure()


def test_blank_token_does_not_unlock_an_exposed_host(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUPERSCRIPT_API_TOKEN", "")
    with pytest.raises(ValueError, match="SUPERSCRIPT_API_TOKEN"):
        load_settings(host="0.0.0.0").check_exposure()
