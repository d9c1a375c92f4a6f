"""The Temporal worker: every workflow and activity of SuperScript on one task queue."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from temporalio.client import Client
from temporalio.worker import Worker

from superscript.batches.activities import BatchActivities
from superscript.batches.store import BatchStore
from superscript.batches.workflows import BatchWorkflow
from superscript.fees.activities import FeeActivities
from superscript.fees.decided import RecentlyDecided
from superscript.fees.workflows import FeeDeductionWorkflow
from superscript.ledger import Ledger
from superscript.scripts.activities import ScriptActivities
from superscript.scripts.records import ScriptRuns
from superscript.scripts.registry import Registry
from superscript.scripts.workflows import SinglePaymentCollectionWorkflow
from superscript.settings import Settings

# In-flight activities get this long to finish after SIGTERM before they are cancelled.
GRACEFUL_SHUTDOWN = timedelta(seconds=20)


def workflows() -> Sequence[type]:
    return [FeeDeductionWorkflow, BatchWorkflow, SinglePaymentCollectionWorkflow]


def activities(
    client: Client, ledger: Ledger, settings: Settings, decided: RecentlyDecided | None = None
) -> Sequence[Any]:
    fees = FeeActivities(ledger, decided)
    batches = BatchActivities(
        BatchStore(ledger), Registry(settings.scripts_dir), ScriptRuns(ledger.engine), client
    )
    scripts = ScriptActivities.from_settings(ledger.engine, settings)
    return [
        fees.apply_fee,
        scripts.run_payment_script,
        scripts.record_script_result,
        batches.apply_fee_chunk,
        batches.plan_script_chunk,
        batches.record_batch_items,
        batches.fetch_script_run,
        batches.complete_batch,
    ]


def build_worker(
    client: Client, ledger: Ledger, settings: Settings, decided: RecentlyDecided | None = None
) -> Worker:
    """``decided``: where a process that also serves the API finds the fee outcomes."""
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=workflows(),
        activities=activities(client, ledger, settings, decided),
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        max_concurrent_activities=200,
    )


async def run_worker(
    client: Client,
    ledger: Ledger,
    settings: Settings,
    stop: asyncio.Event,
    decided: RecentlyDecided | None = None,
) -> None:
    """Poll until ``stop`` is set, then shut down gracefully (in-flight work finishes)."""
    worker = build_worker(client, ledger, settings, decided)
    async with worker:
        await stop.wait()
