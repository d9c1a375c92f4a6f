"""One data dir, one stack, one ledger (issue 9, points 2 and 3).

A second ``up`` or ``dev-server`` on a data dir in use is refused at once and starts
nothing; every port is checked (by binding) before anything starts; a data dir remembers
its ledger and refuses another, so its Temporal history never answers for a ledger that
never saw the order.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from sqlalchemy.engine import make_url

from superscript import datadir
from superscript.devserver import port_open
from superscript.ledger import Ledger
from tests.conftest import unique
from tests.processes import (
    WORKER_READY,
    Service,
    free_port,
    kill_tree,
    service_env,
    start,
    wait_healthy,
    wait_until,
)

SECRET = "s3cret-pw"


def flat(text: str) -> str:
    """The text with its line breaks (a console wraps long lines) as single spaces."""
    return " ".join(text.split())


def with_password(url: str) -> str:
    """``url`` with a password (PostgreSQL here trusts local users, so any will do)."""
    return make_url(url).set(password=SECRET).render_as_string(hide_password=False)


def temporal_servers(data_dir: Path) -> set[int]:
    """Pids of the ``temporal`` dev servers running on ``data_dir``'s history."""
    db = str((data_dir / "temporal.db").resolve())
    pids = set()
    for process in psutil.process_iter(["cmdline"]):
        if db in (process.info["cmdline"] or []):
            pids.add(process.pid)
    return pids


def up_env(data_dir: Path, **values: str) -> dict[str, str]:
    ports = {
        "SUPERSCRIPT_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_PORT": str(free_port()),
        "SUPERSCRIPT_TEMPORAL_UI_PORT": str(free_port()),
    }
    return service_env(SUPERSCRIPT_DATA_DIR=str(data_dir), COLUMNS="400", **{**ports, **values})


def base_url(env: dict[str, str]) -> str:
    return f"http://127.0.0.1:{env['SUPERSCRIPT_PORT']}"


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
            async with httpx.AsyncClient(base_url=base_url(env), timeout=60) as http:
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


# --- the lock, in-process and in a real holder process -----------------------------------

HOLDER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from superscript import datadir
    lock = datadir.acquire(Path(sys.argv[1]), command="the test's holder")
    print("locked", flush=True)
    sys.stdin.read()
    """
)


@contextmanager
def holder(data_dir: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(data_dir)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "locked\n"
        yield process
    finally:
        process.kill()
        process.wait()


def test_a_held_data_dir_is_refused_naming_the_holder_and_freed_by_sigkill(
    tmp_path: Path,
) -> None:
    with holder(tmp_path) as process:
        with pytest.raises(datadir.DataDirInUse) as refusal:
            datadir.acquire(tmp_path)
        assert f"pid {process.pid} (the test's holder" in str(refusal.value)
        # SIGKILL: no goodbye, the lock file stays behind with the dead holder's pid.
        process.kill()
        process.wait()
    assert str(process.pid) in (tmp_path / datadir.LOCK_FILE).read_text()
    lock = datadir.acquire(tmp_path, command="next")
    try:
        assert json.loads((tmp_path / datadir.LOCK_FILE).read_text())["pid"] != process.pid
    finally:
        lock.release()
    datadir.acquire(tmp_path).release()


def test_ports_are_checked_by_binding(tmp_path: Path) -> None:
    # Bound but not listening: a connection test finds nothing there, yet no server can
    # bind it. Only binding tells.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        assert not asyncio.run(port_open(port))
        with pytest.raises(datadir.PortInUse) as refusal:
            datadir.check_ports(
                [
                    datadir.Port("API", "127.0.0.1", free_port()),
                    datadir.Port("Temporal gRPC", "127.0.0.1", port),
                ]
            )
    assert f"port {port} on 127.0.0.1 (the Temporal gRPC) is already in use" in str(refusal.value)
    same = free_port()
    with pytest.raises(datadir.PortInUse, match=f"port {same} is given both for the API"):
        datadir.check_ports(
            [
                datadir.Port("API", "127.0.0.1", same),
                datadir.Port("Temporal Web UI", "127.0.0.1", same),
            ]
        )
    # Free again once let go; port 0 (the system picks) is never in use.
    datadir.check_ports([datadir.Port("API", "127.0.0.1", 0), datadir.Port("x", "127.0.0.1", port)])


# --- the ledger record, on both databases -----------------------------------------------


async def test_a_data_dir_keeps_the_ledger_it_was_first_used_with(
    tmp_path: Path, db_url: str, pg_url: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    # A command that does not use the data dir's history (TEMPORAL_ADDRESS set) records
    # nothing; the first one that does records the ledger and its identity.
    await datadir.check_ledger(data_dir, db_url, record=False)
    assert datadir.read_record(data_dir) is None
    await datadir.check_ledger(data_dir, db_url, record=True)
    record = datadir.read_record(data_dir)
    assert record is not None
    ledger = await Ledger.open(db_url)
    try:
        assert record.ledger_id == await ledger.ledger_id()
    finally:
        await ledger.close()
    assert record.url == datadir.ledger_url(db_url)
    # The same ledger again, recording or not: fine, and the record is unchanged.
    await datadir.check_ledger(data_dir, db_url, record=True)
    await datadir.check_ledger(data_dir, db_url, record=False)
    assert datadir.read_record(data_dir) == record

    # Another ledger, a fresh SQLite file or the other database: refused, naming both.
    fresh = f"sqlite:///{tmp_path / 'fresh.db'}"
    other = fresh if db_url.startswith("postgresql") else with_password(pg_url)
    for url in (fresh, other):
        with pytest.raises(datadir.LedgerMismatch) as refusal:
            await datadir.check_ledger(data_dir, url, record=True)
        message = str(refusal.value)
        assert record.url in message and datadir.ledger_url(url) in message, message
        assert SECRET not in message
    assert not (tmp_path / "fresh.db").exists(), "a refused check created the ledger"
    assert datadir.read_record(data_dir) == record


async def test_a_data_dir_from_before_records_belongs_to_its_own_sqlite_ledger(
    tmp_path: Path, pg_url: str
) -> None:
    """A data dir used before this version (a Temporal history and its SQLite ledger, no
    record): the issue's scenario must be refused there too."""
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    own = f"sqlite:///{data_dir / 'ledger.db'}"
    await (await Ledger.open(own)).close()
    (data_dir / "temporal.db").write_bytes(b"")
    with pytest.raises(datadir.LedgerMismatch, match="before ledgers were recorded"):
        await datadir.check_ledger(data_dir, pg_url, record=True)
    assert datadir.read_record(data_dir) is None
    await datadir.check_ledger(data_dir, own, record=True)
    assert datadir.read_record(data_dir) is not None


# --- the real commands ------------------------------------------------------------------


async def test_a_second_stack_on_a_used_data_dir_starts_nothing(
    tmp_path: Path, pg_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = up_env(data_dir)
    first = start("up-1", ["up"], env, tmp_path)
    try:
        await wait_healthy(base_url(env), first)
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
            assert "postgresql://postgres:***@" in output and SECRET not in output, output
        # No second dev server was started, and the first stack still answers.
        assert temporal_servers(data_dir) == {server}
        async with httpx.AsyncClient(base_url=base_url(env), timeout=10) as http:
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

    first = start("up-sqlite", ["up"], env, tmp_path)
    try:
        await wait_healthy(base_url(env), first)
        async with httpx.AsyncClient(base_url=base_url(env), timeout=60) as http:
            await http.post("/accounts", json={"account_id": account_id, "balance": 90})
            charged = await http.post(f"/orders/{order_id}/fee", json=fee)
        assert charged.status_code == 200, charged.text
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
    assert SECRET not in output and SECRET not in (data_dir / "superscript.lock").read_text()
    assert not temporal_servers(data_dir)

    # The same ledger again: starts, and the order is the one it charged.
    again = start("up-sqlite-2", ["up"], env, tmp_path)
    await wait_healthy(base_url(env), again)
    (server,) = temporal_servers(data_dir)
    async with httpx.AsyncClient(base_url=base_url(env), timeout=60) as http:
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
    last = start("up-after-kill", ["up"], env, tmp_path)
    try:
        await wait_healthy(base_url(env), last)
        async with httpx.AsyncClient(base_url=base_url(env), timeout=60) as http:
            after = await http.get(f"/orders/{order_id}/fee")
        assert after.status_code == 200 and after.json() == charged.json()
    finally:
        assert await last.terminate() == 0, last.output()
