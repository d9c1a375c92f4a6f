"""Running the parts as long-lived services with one stop signal (SIGINT or SIGTERM)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator

import uvicorn
from fastapi import FastAPI
from temporalio.client import Client

from superscript import datadir
from superscript.api.app import create_app
from superscript.api.deps import TemporalLink
from superscript.devserver import DevServer
from superscript.fees.decided import RecentlyDecided
from superscript.ledger import Ledger
from superscript.settings import Settings
from superscript.temporal.client import connect
from superscript.worker import run_worker

log = logging.getLogger("superscript")

# Requests still in flight at shutdown get this long; POSTs wait 30 s for outcomes.
API_GRACEFUL_SHUTDOWN_SECONDS = 35
# How long the API keeps an idle keep-alive connection open. It must outlast the idle
# expiry of every client's connection pool (httpx's default is 5 s, uvicorn's default
# keep-alive is 5 s too): a server that closes an idle connection just as a client sends
# its next request on it closes a socket with unread data, which resets it, and the
# client gets a ReadError for a request the server never read (seen in
# test_concurrent_duplicate_orders_survive_killed_workers on a loaded machine). 75 s is
# past httpx's 5 s and a load balancer's usual 60 s, so the client always closes first.
API_KEEP_ALIVE_SECONDS = 75
CONNECT_RETRY_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 120.0


def install_stop_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: our stop event governs every part."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn calls sys.exit when it can't bind, which would escape the event loop
        # past every other part's shutdown; it has logged why, so just stop serving.
        try:
            await super().startup(sockets=sockets)
        except SystemExit:
            self.should_exit = True


async def serve_api(settings: Settings, stop: asyncio.Event, app: FastAPI | None = None) -> None:
    config = uvicorn.Config(
        app if app is not None else create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=API_GRACEFUL_SHUTDOWN_SECONDS,
        timeout_keep_alive=API_KEEP_ALIVE_SECONDS,
        access_log=False,
    )
    server = _Server(config)
    serving = asyncio.create_task(server.serve())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
    server.should_exit = True
    stopping.cancel()
    await serving
    if not server.started:
        raise RuntimeError(f"the API could not start on {settings.host}:{settings.port}")


async def connect_when_ready(settings: Settings, stop: asyncio.Event) -> Client | None:
    """Wait for Temporal to answer: a worker may well start before its server."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + CONNECT_TIMEOUT_SECONDS
    while True:
        try:
            return await connect(settings)
        except RuntimeError as exc:
            if loop.time() > deadline:
                raise
            log.warning("waiting for Temporal: %s", exc)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), CONNECT_RETRY_SECONDS)
        if stop.is_set():
            return None


async def serve_worker(settings: Settings, stop: asyncio.Event) -> None:
    ledger = await Ledger.open(settings.database_url)
    try:
        client = await connect_when_ready(settings, stop)
        if client is None:
            return
        log.info("worker polling task queue %r", settings.task_queue)
        await run_worker(client, ledger, settings, stop)
    finally:
        await ledger.close()


async def serve_api_with_worker(settings: Settings, stop: asyncio.Event) -> None:
    """The API and a worker on one Temporal client and one ledger: fee workflows start
    eagerly (the SDK hands a start's first task to a worker registered on the same client).

    A worker refuses a lazy client, and the API must serve without Temporal: it serves at
    once with no client (``/healthz`` 503), and the worker, once connected, hands its
    client to the API (``TemporalLink.connected``) and starts polling.

    Stopping: the API first (requests in flight get their grace, and their workflows this
    worker to finish on), then the worker (its own graceful shutdown).
    """
    ledger = await Ledger.open(settings.database_url)
    link, decided = TemporalLink(), RecentlyDecided()
    worker_stop = asyncio.Event()
    working = asyncio.create_task(_hosted_worker(settings, ledger, link, decided, worker_stop))
    working.add_done_callback(lambda _: stop.set())  # a worker that ends stops the API
    app = create_app(settings, ledger=ledger, temporal=link, decided=decided)
    try:
        await serve_api(settings, stop, app)
    finally:
        worker_stop.set()
        try:
            await working
        finally:
            await ledger.close()


async def _hosted_worker(
    settings: Settings,
    ledger: Ledger,
    link: TemporalLink,
    decided: RecentlyDecided,
    stop: asyncio.Event,
) -> None:
    """Connect (however long Temporal takes: the API serves meanwhile), then work."""
    client = None
    while client is None and not stop.is_set():
        try:
            client = await connect_when_ready(settings, stop)
        except RuntimeError as exc:  # past CONNECT_TIMEOUT_SECONDS: keep serving, retry
            log.warning("the API's worker still waits for Temporal: %s", exc)
    if client is None:
        return
    link.connected(client)
    log.info("worker polling task queue %r (in the API process)", settings.task_queue)
    await run_worker(client, ledger, settings, stop, decided)


async def run_until_stopped(*parts: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run parts side by side; a signal, or any part ending, stops all of them."""
    stop = asyncio.Event()
    install_stop_handlers(stop)

    async def guarded(part: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        try:
            await part(stop)
        finally:
            stop.set()

    results = await asyncio.gather(*(guarded(part) for part in parts), return_exceptions=True)
    errors = [result for result in results if isinstance(result, BaseException)]
    if errors:
        raise errors[0]


async def dev_server_until_stopped(
    settings: Settings, announce: Callable[[DevServer], None], lock: datadir.DataDirLock
) -> None:
    """The dev server alone, on the data dir ``lock`` holds (``datadir.claim``: locked, its
    ports checked). It has no ledger, so it neither records nor checks one; the worker
    and API started against it do (see ``datadir.check_ledger``)."""
    server = DevServer(settings, lock)
    # Before the start: a signal while the server starts is a clean stop once it is up.
    stop = asyncio.Event()
    install_stop_handlers(stop)
    try:
        await server.start()
        announce(server)
        waiting = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(_wait_process(server))
        await asyncio.wait({waiting, exited}, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        exited.cancel()
    finally:
        await server.stop()
        lock.release()


async def _wait_process(server: DevServer) -> None:
    assert server.process is not None
    await server.process.wait()


async def check_ledger(settings: Settings) -> None:
    """The data dir's ledger record, checked (and made on first use with the embedded
    Temporal, whose history lives in the data dir) before any part starts."""
    await datadir.check_ledger(
        settings.data_dir, settings.database_url, record=settings.temporal_embedded
    )


async def worker(settings: Settings) -> None:
    """``superscript worker``: refused before it polls if the data dir has another ledger."""
    await check_ledger(settings)
    await run_until_stopped(lambda stop: serve_worker(settings, stop))


async def api(settings: Settings) -> None:
    """``superscript api``: its port and the data dir's ledger checked, then served."""
    datadir.check_ports(datadir.service_ports(settings, api=True, temporal=False))
    await check_ledger(settings)
    if settings.api_worker:
        await run_until_stopped(lambda stop: serve_api_with_worker(settings, stop))
    else:
        await run_until_stopped(lambda stop: serve_api(settings, stop))


async def up(
    settings: Settings,
    announce: Callable[[DevServer | None], None],
    lock: datadir.DataDirLock,
) -> None:
    """The embedded dev server (unless TEMPORAL_ADDRESS is set), one worker and the API.

    ``lock`` holds the data dir, whose ports were found free (``datadir.claim``); the
    ledger is checked against the data dir's before anything starts. (The kernel lets go
    of the lock when this process exits, whatever way it does.)
    """
    settings.check_exposure()
    await check_ledger(settings)
    server = DevServer(settings, lock) if settings.temporal_embedded else None
    try:
        # Inside the try: a stop while the server starts still stops what was started.
        if server is not None:
            await server.start()
        announce(server)
        # One client for the API and the worker: fee workflows start eagerly.
        await run_until_stopped(lambda stop: serve_api_with_worker(settings, stop))
    finally:
        if server is not None:
            await server.stop()
        lock.release()
