"""Liveness of the API and of what it depends on."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse

from superscript.api.deps import ClientDep, LedgerDep, MetricsDep
from superscript.api.schemas import HealthBody

router = APIRouter(tags=["health"])
CHECK_TIMEOUT_SECONDS = 3.0


async def _check(probe: Any) -> str:
    try:
        await asyncio.wait_for(probe(), CHECK_TIMEOUT_SECONDS)
    except Exception:
        return "unavailable"
    return "ok"


@router.get("/healthz", response_model=HealthBody, responses={503: {"model": HealthBody}})
async def healthz(client: ClientDep, ledger: LedgerDep) -> Response:
    temporal, database = await asyncio.gather(
        _check(client.service_client.check_health), _check(ledger.ping)
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
