"""One data dir, one stack, one ledger (issue 9, points 2 and 3), with the real commands.

A second ``up`` or ``dev-server`` on a data dir in use is refused at once and starts
nothing; a port in use is refused before anything starts; a data dir that remembers its
ledger refuses another, so its Temporal history never answers for a ledger that never saw
the order.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx
import psutil

from superscript import datadir
from superscript.devserver import port_open
from tests.commands import api_url, charge_a_new_account, start_serving, up_ports
from tests.conftest import PG_PASSWORD, unique, with_password
from tests.processes import (
    WORKER_READY,
    Service,
    kill_tree,
    service_env,
    start,
    wait_until,
)


def flat(text: str) -> str:
    """The text with its line breaks (a console wraps long lines) as single spaces."""
    return " ".join(text.split())


def temporal_servers(data_dir: Path) -> set[int]:
    """Pids of the ``temporal`` dev servers running on ``data_dir``'s history."""
    db = str((data_dir / "temporal.db").resolve())
    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        if db in (process.info["cmdline"] or []):
            pids.add(process.pid)
    return pids


def up_env(data_dir: Path, **values: str) -> dict[str, str]:
    return service_env(
        SUPERSCRIPT_DATA_DIR=str(data_dir), COLUMNS="400", **{**up_ports(), **values}
    )


async def refused(
    service: Service,
    env: dict[str, str] | None = None,
    probe: Callable[[httpx.AsyncClient], Awaitable[str]] | None = None,
) -> str:
    """Wait for ``service`` to exit; its output, flattened. Fails if it exits 0, or (given
    its env) if its API comes up instead: then it started, which is the bug (``probe``
    then says what the wrongly started stack answers)."""

    async def ended() -> bool:
        if service.process.poll() is not None:
            return True
        if env is not None:
            async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
                try:
                    healthy = (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    healthy = False
                if healthy:
                    answer = await probe(http) if probe is not None else ""
                    kill_tree(service)
                    raise AssertionError(f"{service.name} started; {answer}")
        return False

    try:
        await wait_until(ended, f"{service.name} to refuse", 120, interval=0.2)
    finally:
        kill_tree(service)
    output = service.output()
    assert service.process.returncode not in (0, None), output
    assert WORKER_READY not in output, output
    return flat(output)


# --- the real commands ------------------------------------------------------------------


async def test_a_second_stack_on_a_used_data_dir_starts_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = up_env(data_dir)
    first = await start_serving("up-1", ["up"], env, tmp_path)
    try:
        (server,) = temporal_servers(data_dir)
        # A second up and a dev-server on other ports, a worker and an API pointed at this
        # data dir with another ledger, all at once (each is refused on its own).
        others = {
            "up-2": (["up"], up_env(data_dir)),
            "dev-server-2": (["dev-server"], up_env(data_dir)),
            **{
                f"{role}-pg": (
                    [role],
                    up_env(data_dir, SUPERSCRIPT_DATABASE_URL=with_password(pg_url)),
                )
                for role in ("worker", "api")
            },
        }
        outputs = dict(
            zip(
                others,
                await asyncio.gather(
                    *(
                        refused(start(name, args, other, tmp_path), other)
                        for name, (args, other) in others.items()
                    )
                ),
                strict=True,
            )
        )
        for name in ("up-2", "dev-server-2"):
            output = outputs[name]
            assert f"is in use by pid {first.process.pid} (superscript up" in output, output
            temporal_port = int(others[name][1]["SUPERSCRIPT_TEMPORAL_PORT"])
            assert not await port_open(temporal_port)
        for name in ("worker-pg", "api-pg"):
            output = outputs[name]
            assert f"sqlite:///{(data_dir / 'ledger.db').resolve()}" in output, output
            assert "postgresql://postgres:***@" in output and PG_PASSWORD not in output, output
        # No second dev server was started, and the first stack still answers.
        assert temporal_servers(data_dir) == {server}
        async with httpx.AsyncClient(base_url=api_url(env), timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200
    finally:
        code = await first.terminate()
    assert code == 0, first.output()
    assert "ledger   sqlite:///" in first.output()


async def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    """Each port of up (and of dev-server) taken in turn, each start on its own data dir
    so that they run side by side: refused, naming the port, with nothing started."""
    cases = [
        ("up", "API", "SUPERSCRIPT_PORT"),
        ("up", "Temporal gRPC", "SUPERSCRIPT_TEMPORAL_PORT"),
        ("up", "Temporal Web UI", "SUPERSCRIPT_TEMPORAL_UI_PORT"),
        ("dev-server", "Temporal Web UI", "SUPERSCRIPT_TEMPORAL_UI_PORT"),
    ]
    taken: list[socket.socket] = []
    starts: list[tuple[int, Path, Service]] = []
    try:
        for n, (command, purpose, variable) in enumerate(cases):
            sock = socket.socket()
            taken.append(sock)
            sock.bind(("127.0.0.1", 0))
            if purpose != "Temporal gRPC":  # that one only bound, never listening
                sock.listen()
            port = sock.getsockname()[1]
            data_dir = tmp_path / f"data-{n}"
            env = up_env(data_dir, **{variable: str(port)})
            starts.append((port, data_dir, start(f"{command}-{n}", [command], env, tmp_path)))
        outputs = await asyncio.gather(*(refused(service) for _, _, service in starts))
    finally:
        for sock in taken:
            sock.close()
        for _, _, service in starts:
            kill_tree(service)
    for (command, purpose, _), (port, data_dir, _), output in zip(
        cases, starts, outputs, strict=True
    ):
        assert f"port {port} on 127.0.0.1 (the {purpose}) is already in use" in output, output
        assert not temporal_servers(data_dir), command
        assert not (data_dir / "temporal.log").exists(), f"{command} started a dev server"
        assert not (data_dir / "ledger.db").exists(), f"{command} opened the ledger"


async def test_issue_9_a_history_never_answers_for_another_ledger(
    tmp_path: Path, pg_url: str
) -> None:
    """The issue's scenario: a data dir used with SQLite, an order charged, then ``up
    --database-url <pg>``. It answered ``200 charged`` from the old workflow; now it is
    refused, naming both ledgers. The same ledger again starts and answers as before."""
    data_dir = tmp_path / "data"
    env = up_env(data_dir)
    account_id, order_id = unique("acc"), unique("order")
    fee = {"account_id": account_id, "amount": 40}

    first = await start_serving("up-sqlite", ["up"], env, tmp_path)
    try:
        charged = await charge_a_new_account(env, order_id, fee)
    finally:
        assert await first.terminate() == 0, first.output()

    pg_env = {**env, "SUPERSCRIPT_DATABASE_URL": with_password(pg_url)}

    async def order_answer(http: httpx.AsyncClient) -> str:
        answer = await http.post(f"/orders/{order_id}/fee", json=fee)
        return f"POST /orders/{order_id}/fee answered {answer.status_code} {answer.text}"

    output = await refused(start("up-pg", ["up"], pg_env, tmp_path), pg_env, order_answer)
    sqlite_url = f"sqlite:///{(data_dir / 'ledger.db').resolve()}"
    assert f"belongs to the ledger {sqlite_url}" in output, output
    assert f"names {datadir.ledger_url(with_password(pg_url))}" in output, output
    assert (
        PG_PASSWORD not in output and PG_PASSWORD not in (data_dir / "superscript.lock").read_text()
    )
    assert not temporal_servers(data_dir)

    # The same ledger again: starts, and the order is the one it charged.
    again = await start_serving("up-sqlite-2", ["up"], env, tmp_path)
    (server,) = temporal_servers(data_dir)
    async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
        replayed = await http.post(f"/orders/{order_id}/fee", json=fee)
    assert replayed.status_code == 200 and replayed.json() == charged.json()

    # SIGKILL the stack's own process only: its dev server lives on, writing the history,
    # and holds the data dir still. The next up is refused, naming that dev server.
    again.kill()
    assert psutil.pid_exists(server)
    output = await refused(start("up-orphan", ["up"], env, tmp_path), env)
    assert f"the Temporal dev server it started (pid {server}) still runs" in output, output
    psutil.Process(server).kill()
    psutil.Process(server).wait(30)

    # Nothing of the killed stack is left: the stale lock file does not block.
    last = await start_serving("up-after-kill", ["up"], env, tmp_path)
    try:
        async with httpx.AsyncClient(base_url=api_url(env), timeout=60) as http:
            after = await http.get(f"/orders/{order_id}/fee")
        assert after.status_code == 200 and after.json() == charged.json()
    finally:
        assert await last.terminate() == 0, last.output()
