"""The Temporal worker: every workflow and activity of SuperScript on one task queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from superscript.fees.activities import FeeActivities
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger import Ledger
from superscript.settings import Settings

# In-flight activities get this long to finish after SIGTERM before they are cancelled.
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def workflows() -> Sequence[type]:
    return [FeeDeductionWorkflow]


def activities(ledger: Ledger, settings: Settings) -> Sequence[Any]:
    fees = FeeActivities(ledger)
    return [fees.apply_fee]


def build_worker(client: Client, ledger: Ledger, settings: Settings) -> Worker:
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows(),
        activities=activities(ledger, settings),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=200,
    )


async def run_worker(
    client: Client, ledger: Ledger, settings: Settings, stop: asyncio.Event
) -> None:
    """Poll until ``stop`` is set, then shut down gracefully (in-flight work finishes)."""
    worker = build_worker(client, ledger, settings)
    async with worker:
        await stop.wait()
