"""(j) and (k): one call at a time, the latency a single caller sees (p50, milliseconds).

Three kinds of call, in alternating rounds (as (a) and (b), so that each meets the dev
server in the same states):

- (k) ``EmptyWorkflow`` (in the sandbox or not, as the fee workflow is), started eagerly
  by the client the bench's own worker runs on: the floor of one eager workflow call;
- the seed's design of one fee: ``SeedFeeWorkflow`` (one regular activity, no eager
  start), started and awaited by the bench's client;
- (j) ``POST /orders/{id}/fee`` on a fresh order: the product's whole path (HTTP, the
  ledger read, the eager start into the API's own worker, the local activity, the answer).

Goals (issue #11): (j) <= 0.35 x the seed's p50, and (j) <= 2.5 x (k).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
from temporalio.api.enums.v1 import EventType

from bench.report import Report, Row, at_most, ratio
from bench.sizes import Sizes
from bench.stack import Stack
from bench.workflows import EmptyWorkflow, NoopInput, SeedFeeWorkflow
from bench.workload import order
from superscript.fees.models import FeeDeductionInput, fee_workflow_id

ROUNDS = 4
WARMUP = 5


@dataclass
class Latencies:
    """Each kind's call times in seconds, and how many empty starts were eager."""

    times: dict[str, list[float]] = field(default_factory=dict)
    eager: int = 0

    def p50_ms(self, kind: str) -> float:
        return statistics.median(self.times[kind]) * 1000


@dataclass
class OneCalls:
    stack: Stack
    http: httpx.AsyncClient
    found: Latencies

    async def empty(self, tag: str, i: int) -> None:
        handle = await self.stack.the_client().start_workflow(
            EmptyWorkflow.run,
            NoopInput(item=i),
            id=f"{self.stack.run_id}-empty-{tag}-{i}",
            task_queue=self.stack.bench_queue,
            request_eager_start=True,
        )
        self.found.eager += bool(getattr(handle, "__temporal_eagerly_started", False))
        await handle.result()

    async def seed(self, tag: str, i: int) -> None:
        fee = order(self.stack, f"seed1-{tag}", i)
        await self.stack.the_client().execute_workflow(
            SeedFeeWorkflow.run,
            FeeDeductionInput(order=fee),
            id=fee_workflow_id(fee.order_id),
            task_queue=self.stack.bench_queue,
        )

    async def fee(self, tag: str, i: int) -> None:
        fee = order(self.stack, f"j-{tag}", i)
        answer = await self.http.post(
            f"/orders/{fee.order_id}/fee", json={"account_id": fee.account_id, "amount": 1}
        )
        answer.raise_for_status()


async def timed(n: int, call: Callable[[int], Awaitable[None]]) -> list[float]:
    times: list[float] = []
    for i in range(n):
        started = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - started)
    return times


async def measure_sequential(stack: Stack, sizes: Sizes, report: Report) -> None:
    """(j) and (k) one call at a time, the seed's one fee beside them, alternating rounds."""
    found = Latencies()
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=60) as http:
        calls = OneCalls(stack, http, found)
        kinds = {"k": calls.empty, "seed": calls.seed, "j": calls.fee}
        for kind, call in kinds.items():
            await timed(WARMUP, functools.partial(call, "warm"))
            found.times[kind] = []
        found.eager = 0
        for round_ in range(ROUNDS):
            n = sizes.sequential * (round_ + 1) // ROUNDS - sizes.sequential * round_ // ROUNDS
            for kind, call in kinds.items():
                async with stack.cpu(report, kind if kind != "seed" else "j_seed"):
                    found.times[kind] += await timed(n, functools.partial(call, f"r{round_}"))
    report.figures["j"] = {
        "calls": sizes.sequential,
        "rounds": ROUNDS,
        "p50_ms": {kind: found.p50_ms(kind) for kind in found.times},
        "empty_eagerly_started": found.eager,
        "fee_history": await fee_history(stack, order(stack, "j-r0", 0).order_id),
    }
    add_rows(report, found, sizes)


def add_rows(report: Report, found: Latencies, sizes: Sizes) -> None:
    seed, fee, floor = found.p50_ms("seed"), found.p50_ms("j"), found.p50_ms("k")
    report.add(Row("j_seed", "(j) seed design: one one-activity fee workflow, p50", seed, "ms"))
    to_seed, to_floor = ratio(fee, seed), ratio(fee, floor)
    label = "(j) sequential fee p50 (POST /orders/{id}/fee)"
    report.add(Row("j", label, fee, "ms", "(j)/seed", to_seed, "<= 0.35", at_most(to_seed, 0.35)))
    eager = None if found.eager == sizes.sequential else f"{found.eager} eager starts"
    report.add(
        Row("k", "(k) empty eager workflow p50, runner as the fee's", floor, "ms", note=eager)
    )
    report.add(
        Row(
            "jk",
            "(j) against (k)",
            fee,
            "ms",
            "(j)/(k)",
            to_floor,
            "<= 2.5",
            at_most(to_floor, 2.5),
        )
    )


async def fee_history(stack: Stack, order_id: str) -> dict[str, object]:
    """One fee run's shape: eager or not, local activity (markers) or a regular one."""
    history = (
        await stack.the_client().get_workflow_handle(fee_workflow_id(order_id)).fetch_history()
    )
    kinds = [event.event_type for event in history.events]
    started = history.events[0].workflow_execution_started_event_attributes
    return {
        "events": len(kinds),
        "eager_execution_accepted": started.eager_execution_accepted,
        "markers": kinds.count(EventType.EVENT_TYPE_MARKER_RECORDED),
        "activities_scheduled": kinds.count(EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED),
    }
