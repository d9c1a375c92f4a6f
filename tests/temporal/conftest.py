"""A worker of the probes, for the tests of ``superscript.temporal``."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from tests.conftest import unique
from tests.temporal.probes import ActivityProbe, Probe, Probes


@pytest.fixture
async def probes(client: Client) -> AsyncIterator[tuple[str, Probes]]:
    """A worker of the probes on a task queue of its own: (task queue, activities)."""
    task_queue = unique("tq-helpers")
    activities = Probes()
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[Probe, ActivityProbe],
        activities=[activities.details_then_fail, activities.wait_until_cancelled],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        yield task_queue, activities
