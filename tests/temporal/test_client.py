"""The Temporal connection from the settings: the embedded server, or Temporal's own
environment configuration (``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``, profile files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from superscript.settings import load_settings
from superscript.temporal.client import connect_config


def test_embedded_temporal_without_temporal_address(isolated: Path) -> None:
    settings = load_settings(temporal_port=7444)
    assert settings.temporal_embedded
    config = connect_config(settings)
    assert config["target_host"] == "127.0.0.1:7444"
    assert config["namespace"] == "default"


def test_temporal_address_and_namespace_from_the_environment(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "temporal.example.com:7233")
    monkeypatch.setenv("TEMPORAL_NAMESPACE", "payments")
    settings = load_settings(temporal_port=7444)
    assert not settings.temporal_embedded
    config = connect_config(settings)
    assert config["target_host"] == "temporal.example.com:7233"
    assert config["namespace"] == "payments"


def test_empty_temporal_address_means_embedded(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "")
    settings = load_settings(temporal_port=7444)
    assert settings.temporal_embedded
    assert connect_config(settings)["target_host"] == "127.0.0.1:7444"


def test_temporal_profile_file_is_honoured(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Temporal's config file is part of its environment configuration, as the contract says."""
    config_file = isolated / "temporal.toml"
    config_file.write_text('[profile.default]\naddress = "file-host:7233"\nnamespace = "file-ns"\n')
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(config_file))
    settings = load_settings()
    assert not settings.temporal_embedded
    config = connect_config(settings)
    assert config["target_host"] == "file-host:7233"
    assert config["namespace"] == "file-ns"

    monkeypatch.setenv("TEMPORAL_ADDRESS", "env-host:7233")
    assert connect_config(load_settings())["target_host"] == "env-host:7233"
