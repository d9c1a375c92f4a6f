"""What every route needs, created once per app and reached through the request."""

from __future__ import annotations

from dataclasses import dataclass, field

from fastapi import Request
from temporalio.client import Client

from superscript.api.coalesce import Coalescer
from superscript.api.metrics import Metrics
from superscript.ledger import FeeOutcome, Ledger
from superscript.scripts.registry import Registry
from superscript.settings import Settings


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    client: Client
    metrics: Metrics
    registry: Registry
    # Concurrent calls for one order share one start and one wait for its outcome.
    fee_waits: Coalescer[FeeOutcome | None] = field(default_factory=Coalescer)


async def services(request: Request) -> Services:
    """Async on purpose: a plain function would send every request through a thread."""
    found: Services = request.app.state.services
    return found
