"""Script routes: the registry, the naive run-every-time route and the run-once route."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.service import RPCError, RPCStatusCode

from superscript.api.deps import ClientDep, LedgerDep, RegistryDep, ScriptRunsDep, SettingsDep
from superscript.api.list_bodies import RunsPage
from superscript.api.paging import PAGE_LIMIT_DEFAULT, IdAfter, PageLimit
from superscript.api.problems import Problem, closed_undecided
from superscript.api.schemas import (
    Identifier,
    OrderIdPath,
    PendingBody,
    ScriptArgs,
    ScriptNamePath,
    Strict,
    problem_responses,
)
from superscript.ledger import LedgerError
from superscript.scripts.client import (
    Pending,
    RunUndecided,
    not_recorded,
    recorded_run,
    request_script_run,
    script_handle,
)
from superscript.scripts.listing import RunStatus, runs_page
from superscript.scripts.models import ScriptRunResult, script_workflow_id
from superscript.scripts.registry import Registry, ScriptNotFound, ScriptSpec
from superscript.scripts.runner import run_script


class ScriptRunRequest(Strict):
    order_id: Identifier
    args: ScriptArgs = Field(default_factory=list)


class ScriptInfo(BaseModel):
    name: str
    description: str
    timeout_seconds: float
    max_attempts: int


class NaiveScriptRunBody(BaseModel):
    order_id: str
    script: str
    exit_code: int | None
    stdout: str
    stderr: str


router = APIRouter(tags=["scripts"])


def script_spec(registry: Registry, name: str) -> ScriptSpec:
    """The registered script, or a 404 ``script_not_found`` problem.

    Called in the route, not a dependency: a bad body is a 422 before an unknown script.
    """
    try:
        return registry.get(name)
    except ScriptNotFound as exc:
        raise Problem(404, exc.code, exc.detail, script=name) from exc


def _unavailable(exc: RPCError, order_id: str, name: str) -> Problem:
    """Temporal did not answer: nothing is decided, the same request may be repeated."""
    return Problem(
        503,
        "temporal_unavailable",
        f"Temporal did not answer ({exc.status.name if exc.status else 'unknown'}): {exc}",
        order_id=order_id,
        script=name,
    )


def _pending(name: str, order_id: str, workflow_id: str | None = None) -> JSONResponse:
    """202 naming the workflow that runs the key (by default the key's own ID)."""
    body = PendingBody(
        order_id=order_id,
        status="pending",
        workflow_id=workflow_id or script_workflow_id(name, order_id),
    )
    return JSONResponse(body.model_dump(), status_code=202)


@router.get("/scripts", response_model=list[ScriptInfo])
async def list_scripts(registry: RegistryDep) -> list[ScriptInfo]:
    """Every registered script with the settings of its header."""
    return [
        ScriptInfo(
            name=spec.name,
            description=spec.description,
            timeout_seconds=spec.timeout_seconds,
            max_attempts=spec.max_attempts,
        )
        for spec in registry.list()
    ]


@router.post(
    "/naive/scripts/{name}/runs",
    response_model=NaiveScriptRunBody,
    responses=problem_responses(401, 404, 413, 422, 500),
)
async def naive_run(
    name: ScriptNamePath, body: ScriptRunRequest, registry: RegistryDep, settings: SettingsDep
) -> NaiveScriptRunBody:
    """Run the script now, every call: the double payment this project prevents."""
    spec = script_spec(registry, name)
    try:
        run = await run_script(
            spec,
            body.args,
            order_id=body.order_id,
            attempt=1,
            extra_env={"SUPERSCRIPT_DATA_DIR": str(settings.data_dir.resolve())},
        )
    except OSError as exc:
        raise Problem(
            500, "script_start_failed", f"script {name!r} could not be started: {exc}"
        ) from exc
    return NaiveScriptRunBody(
        order_id=body.order_id,
        script=spec.name,
        exit_code=run.exit_code,
        stdout=run.stdout,
        stderr=run.stderr,
    )


@router.post(
    "/scripts/{name}/runs",
    response_model=ScriptRunResult,
    responses={202: {"model": PendingBody}, **problem_responses(401, 404, 413, 422, 503)},
)
async def run_once(
    name: ScriptNamePath,
    body: ScriptRunRequest,
    registry: RegistryDep,
    runs: ScriptRunsDep,
    client: ClientDep,
    settings: SettingsDep,
) -> Response | ScriptRunResult:
    """Run the script once per (script, order_id) through ``SCRIPT-WF-{name}/{order_id}``.

    A failed script is still a decided run: 200 with status ``failed``.
    """
    spec = script_spec(registry, name)
    try:
        result = await request_script_run(
            client,
            runs,
            spec,
            body.order_id,
            body.args,
            task_queue=settings.task_queue,
            wait_seconds=settings.result_wait_seconds,
        )
    except LedgerError as exc:  # idempotency_key_reused
        raise Problem.from_ledger(exc, order_id=body.order_id, script=name) from exc
    except RunUndecided as exc:
        raise Problem(503, exc.code, exc.detail, order_id=body.order_id, script=name) from exc
    except RPCError as exc:
        raise _unavailable(exc, body.order_id, name) from exc
    if isinstance(result, Pending):
        return _pending(name, body.order_id, result.workflow_id)
    return result


@router.get(
    "/scripts/{name}/runs/{order_id}",
    response_model=ScriptRunResult,
    responses={202: {"model": PendingBody}, **problem_responses(404, 422, 503)},
)
async def get_run(
    name: ScriptNamePath, order_id: OrderIdPath, runs: ScriptRunsDep, client: ClientDep
) -> Response | ScriptRunResult:
    """The decided run from its record; 202 while its workflow runs.

    Temporal only says whether a run is still going: a closed workflow whose result the
    record does not hold is a 503, never an answer built from that result.
    """
    record = await runs.get(name, order_id)
    if record is not None and record.result is not None:
        return record.result
    try:
        handle = None if record is None else await recorded_run(client, record)
        if handle is None:
            handle = script_handle(client, name, order_id)
        description = await handle.describe()
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise _unavailable(exc, order_id, name) from exc
        if record is not None:
            # Claimed, but its workflow has not started (yet): the next POST starts it.
            return _pending(name, order_id)
        raise Problem(
            404,
            "run_not_found",
            f"no run of script {name!r} for order {order_id!r}",
            order_id=order_id,
            script=name,
        ) from exc
    if description.close_time is None:
        return _pending(name, order_id, handle.id)
    # It may have been decided since the first read: the workflow records, then closes.
    record = await runs.get(name, order_id)
    if record is not None and record.result is not None:
        return record.result
    not_held = not_recorded(handle.id).detail
    raise closed_undecided(
        handle.id, description.status, "run", not_held, order_id=order_id, script=name
    )


@router.get("/scripts/{name}/runs", response_model=RunsPage, responses=problem_responses(404, 422))
async def list_runs(
    name: ScriptNamePath,
    registry: RegistryDep,
    ledger: LedgerDep,
    status: Annotated[RunStatus | None, Query()] = None,
    limit: PageLimit = PAGE_LIMIT_DEFAULT,
    after: IdAfter = None,
) -> RunsPage:
    """The script's decided runs, newest first; page on with ``after=next_after``."""
    script_spec(registry, name)
    page = await runs_page(ledger, name, after, limit, status)
    return RunsPage(items=page.items, next_after=page.next_after)
