"""Script runs as the tests ask for them and read them: the routes, the records, the logs."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from superscript.scripts import RunResult, ScriptSpec, run_script
from superscript.scripts.models import ScriptRunResult, script_workflow_id
from superscript.settings import Settings
from tests.conftest import Api


async def run(
    spec: ScriptSpec,
    args: list[str] | None = None,
    *,
    order_id: str = "order-1",
    attempt: int = 1,
    timeout: float | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_interval: float = 1.0,
    extra_env: dict[str, str] | None = None,
    kill_grace: float = 2.0,
) -> RunResult:
    """The runner itself, with the defaults these tests share."""
    return await run_script(
        spec,
        args or [],
        order_id=order_id,
        attempt=attempt,
        timeout=timeout,
        heartbeat=heartbeat,
        heartbeat_interval=heartbeat_interval,
        extra_env=extra_env,
        kill_grace=kill_grace,
    )


def run_path(name: str) -> str:
    return f"/scripts/{name}/runs"


async def post_run(api: Api, name: str, order_id: str, args: list[str]) -> httpx.Response:
    return await api.http.post(run_path(name), json={"order_id": order_id, "args": args})


def payment_lines(settings: Settings, key: str | None = None) -> list[str]:
    """The lines of payments.log (of one idempotency key, given ``key``)."""
    log = settings.data_dir / "payments.log"
    if not log.exists():
        return []
    lines = log.read_text().splitlines()
    return [line for line in lines if key is None or line.split()[0] == key]


def starts(settings: Settings, order_id: str) -> list[str]:
    """One line per start of a script for ``order_id``: ``attempt=N``."""
    path = settings.data_dir / f"starts-{order_id}"
    return path.read_text().splitlines() if path.exists() else []


def script_result(script: str, order_id: str, stdout: str) -> ScriptRunResult:
    """A succeeded run's result, as a worker would record it."""
    return ScriptRunResult(
        order_id=order_id,
        script=script,
        status="succeeded",
        exit_code=0,
        stdout=stdout,
        stderr="\x00 control \x1b and ✓",
        attempts=1,
        workflow_id=script_workflow_id(script, order_id),
        run_id="run",
    )
