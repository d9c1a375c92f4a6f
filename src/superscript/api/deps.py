"""What routes depend on, declared once: a route names the aliases it uses.

In the style of the FastAPI full-stack template (``SessionDep``, ``CurrentUser``): a
parameter ``ledger: LedgerDep`` is handed the app's ledger, resolved once per request.
The app builds its ``Services`` when it starts serving (``app.py``); every alias here
reads them from the request. Each getter is async on purpose: FastAPI would send a plain
function through a thread, for every request.

The bearer token is not a dependency but middleware (``auth.py``): it must refuse any
non-GET request before the body limit reads its body, and on paths no route serves,
where a route's dependency would only run after routing (404, 405) and the body's
validation (413, 422) had answered instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from superscript.api.coalesce import Coalescer
from superscript.api.metrics import Metrics
from superscript.api.problems import Problem
from superscript.fees.decided import RecentlyDecided
from superscript.ledger import FeeOutcome, Ledger
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import Registry
from superscript.settings import Settings


class TemporalLink:
    """The API's Temporal client, which may arrive after the API starts serving.

    An API that hosts a worker cannot serve on a lazy client (a worker refuses one), yet
    it must serve without Temporal (``/healthz`` answers 503 meanwhile): it starts with no
    client, and the process hands in the connected one with ``connected``, once.
    """

    def __init__(self, client: Client | None = None) -> None:
        self._client = client

    def connected(self, client: Client) -> None:
        self._client = client

    @property
    def client(self) -> Client | None:
        return self._client


@dataclass
class Services:
    """What every route needs, created once per app."""

    settings: Settings
    ledger: Ledger
    temporal: TemporalLink
    metrics: Metrics
    registry: Registry
    # Outcomes this process's own worker just read from the ledger (None: no worker here).
    decided: RecentlyDecided | None = None
    # Concurrent calls for one order share one start and one wait for its outcome.
    fee_waits: Coalescer[FeeOutcome | None] = field(default_factory=Coalescer)

    @property
    def client(self) -> Client:
        """The connected client; a 503 while the process still waits for Temporal."""
        client = self.temporal.client
        if client is None:
            raise Problem(
                503, "temporal_unavailable", "Temporal is not connected yet; nothing was done"
            )
        return client


async def get_services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings(svc: ServicesDep) -> Settings:
    return svc.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_ledger(svc: ServicesDep) -> Ledger:
    return svc.ledger


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def get_client(svc: ServicesDep) -> Client:
    return svc.client


ClientDep = Annotated[Client, Depends(get_client)]
"""The app's Temporal client (lazy, or not yet connected: the API serves without it)."""


async def get_metrics(svc: ServicesDep) -> Metrics:
    return svc.metrics


MetricsDep = Annotated[Metrics, Depends(get_metrics)]


async def get_registry(svc: ServicesDep) -> Registry:
    return svc.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


async def get_script_runs(ledger: LedgerDep) -> ScriptRuns:
    return ScriptRuns(ledger.engine)


ScriptRunsDep = Annotated[ScriptRuns, Depends(get_script_runs)]
"""The ``script_runs`` records, on the ledger's engine."""
