"""Workflows of ``bench.one_call``, in a module of their own so the sandbox can import them."""

from __future__ import annotations

from temporalio import workflow


@workflow.defn(name="ProbeEmptySandboxedWorkflow")
class EmptySandboxedWorkflow:
    """An empty workflow run in the sandbox, as ``FeeDeductionWorkflow`` is."""

    @workflow.run
    async def run(self, item: int) -> int:
        return item
