"""Liveness of the API and of what it depends on."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from superscript.api.deps import LedgerDep, MetricsDep, ServicesDep
from superscript.api.schemas import HealthBody

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


async def _not_connected() -> None:
    raise ConnectionError("Temporal is not connected yet")


@router.get("/healthz", response_model=HealthBody, responses={503: {"model": HealthBody}})
async def healthz(svc: ServicesDep, ledger: LedgerDep) -> Response:
    client = svc.temporal.client
    temporal, database = await asyncio.gather(
        _check(client.service_client.check_health if client else _not_connected),
        _check(ledger.ping),
    )
    healthy = temporal == "ok" and database == "ok"
    body = {
        "status": "ok" if healthy else "unavailable",
        "temporal": temporal,
        "database": database,
    }
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get(
    "/metrics",
    response_class=Response,
    tags=["metrics"],
    responses={
        200: {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(counters: MetricsDep) -> Response:
    return counters.render()
