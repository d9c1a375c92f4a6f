"""``superscript`` commands in tests, beyond ``tests/processes.py``: the ports ``up``
takes, a command started until it serves or run to its end, and whether a script runs
under a process."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
import psutil

from tests.processes import SUPERSCRIPT, Service, free_port, kill_tree, start, wait_healthy


def up_ports() -> dict[str, str]:
    """Free ports for everything ``superscript up`` serves: API, Temporal gRPC and Web UI."""
    return {
        "SUPERSCRIPT_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_UI_PORT": str(free_port()),
    }


def api_url(env: Mapping[str, str]) -> str:
    """The API's base URL on the port ``env`` gives it."""
    return f"http://127.0.0.1:{env['SUPERSCRIPT_PORT']}"


async def run_command(env: Mapping[str, str], *args: str, seconds: float = 120) -> tuple[int, str]:
    """Run ``superscript ARGS`` as a process to its end: its exit code and its output."""
    process = await asyncio.create_subprocess_exec(
        str(SUPERSCRIPT),
        *args,
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, _ = await asyncio.wait_for(process.communicate(), seconds)
    assert process.returncode is not None
    return process.returncode, out.decode(errors="replace")


async def start_serving(
    name: str, args: list[str], env: Mapping[str, str], log_dir: Path
) -> Service:
    """Start a command that serves the API (``up``, ``api``) and wait until it is healthy;
    if it never is, it is killed with everything it started, and the wait's error raised."""
    service = start(name, args, env, log_dir)
    try:
        await wait_healthy(api_url(env), service)
    except BaseException:
        kill_tree(service)
        raise
    return service


async def charge_a_new_account(
    env: Mapping[str, str], order_id: str, fee: dict[str, Any]
) -> httpx.Response:
    """On the API ``env`` names: open ``fee``'s account with 90, then charge the order, which
    must succeed (as the tests of a stack's data do before they restart it); its answer."""
    async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
        await http.post("/accounts", json={"account_id": fee["account_id"], "balance": 90})
        charged = await http.post(f"/orders/{order_id}/fee", json=fee)
    assert charged.status_code == 200, charged.text
    return charged


def script_running(service: Service, script: str) -> Callable[[], Awaitable[bool]]:
    """A check for ``wait_until``: whether ``script`` runs under ``service`` right now."""

    async def check() -> bool:
        try:
            children = psutil.Process(service.process.pid).children(recursive=True)
            return any(script in " ".join(child.cmdline()) for child in children)
        except psutil.NoSuchProcess:
            return False

    return check
