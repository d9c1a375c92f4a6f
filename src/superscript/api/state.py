"""What every route needs, created once per app and reached through the request."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from temporalio.client import Client

from superscript.api.metrics import Metrics
from superscript.ledger import Ledger
from superscript.scripts.registry import Registry
from superscript.settings import Settings


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    client: Client
    metrics: Metrics
    registry: Registry


async def services(request: Request) -> Services:
    """Async on purpose: a plain function would send every request through a thread."""
    found: Services = request.app.state.services
    return found
