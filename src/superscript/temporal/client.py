"""Connecting to Temporal: Temporal's own environment configuration, or our embedded server."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfigProfile

from superscript.settings import Settings


def connect_config(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``Client.connect``.

    ``temporalio.envconfig`` reads ``TEMPORAL_ADDRESS``, ``TEMPORAL_NAMESPACE``,
    ``TEMPORAL_API_KEY``, ``TEMPORAL_TLS_*`` and profiles; without an address we talk to
    the embedded dev server on the configured port.
    """
    config: dict[str, Any] = dict(ClientConfigProfile.load().to_client_connect_config())
    if settings.temporal_embedded:
        config["target_host"] = f"127.0.0.1:{settings.temporal_port}"
    config.setdefault("namespace", "default")
    return config


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client that speaks pydantic models, as every workflow and activity here does."""
    config = connect_config(settings)
    target = config.pop("target_host")
    return await Client.connect(target, data_converter=pydantic_data_converter, lazy=lazy, **config)
