"""Building the FastAPI app: routers, problem handlers, metrics, auth, and its lifespan."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from temporalio.client import Client

from superscript.api import (
    accounts,
    auth,
    batches,
    docs,
    fees,
    health,
    metrics,
    orders,
    problems,
    scripts,
)
from superscript.api.content_type import JsonBodyMiddleware
from superscript.api.deps import Services, TemporalLink
from superscript.api.limits import BodyLimitMiddleware
from superscript.api.shutdown import AnswerWhenCutMiddleware
from superscript.fees.decided import RecentlyDecided
from superscript.ledger import Ledger
from superscript.scripts.registry import Registry
from superscript.settings import Settings
from superscript.temporal.client import connect

DESCRIPTION = """
SuperScript makes non-idempotent payment operations safe to call twice: a fee deduction or
a payment script happens once per order, however many times and however concurrently it
is asked for. The `/naive/...` routes keep the unsafe behaviour on purpose, to show the
difference.
"""


def create_app(
    settings: Settings,
    *,
    ledger: Ledger | None = None,
    client: Client | None = None,
    temporal: TemporalLink | None = None,
    decided: RecentlyDecided | None = None,
) -> FastAPI:
    """An app that opens its ledger and Temporal client when it starts serving.

    Tests hand in a ledger and client of their own; the app then leaves them open. A
    process that hosts a worker hands in its ledger and a ``TemporalLink`` it fills with
    the worker's client once connected (the one client eager start needs), and the
    worker's ``RecentlyDecided``, from which a fee call takes its outcome.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        owned = ledger is None
        ledger_ = ledger if ledger is not None else await Ledger.open(settings.database_url)
        link = temporal
        if link is None:
            # Lazy: the API starts (and /healthz says why it is unhealthy) without Temporal.
            link = TemporalLink(client or await connect(settings, lazy=True))
        services = Services(
            settings=settings,
            ledger=ledger_,
            temporal=link,
            metrics=app_metrics,
            registry=Registry(settings.scripts_dir),
            decided=decided,
        )
        app.state.services = services
        try:
            yield
        finally:
            await services.fee_waits.close()
            if owned:
                await ledger_.close()

    app = FastAPI(
        title="SuperScript",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        # '/accounts/' is an empty ID, not a typo to redirect: it gets a 404 problem.
        redirect_slashes=False,
        # Served by docs.install from assets shipped with the package, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app_metrics = metrics.Metrics()
    problems.install(app)
    docs.install(app)
    # Outermost last: metrics see everything, auth refuses before any body is read.
    app.add_middleware(JsonBodyMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    auth.install(app, settings)
    metrics.install(app, app_metrics)
    # Outermost of all: a request cut at shutdown still gets a problem document.
    app.add_middleware(AnswerWhenCutMiddleware)
    for module in (health, accounts, fees, orders, batches, scripts):
        app.include_router(module.router)
    return app
