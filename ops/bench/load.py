"""Orders through the API, and bare workflows straight to Temporal.

Closed loop (:func:`run_orders`, :func:`run_bare_sagas`): ``concurrency`` clients, each
starting its next saga once its last one has finished, until ``count`` have been started:
the ceiling. Open loop (:func:`run_paced_orders`): orders start on a schedule, ``rate`` a
second, whether or not the earlier ones have finished, up to a cap on those in flight. A
saga is timed from the moment it was accepted (the API's answer; Temporal's, for the bare
workflow) to the moment the client sees it finished (``handle.result()``, a long poll on the
workflow's close event).
"""

import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

import httpx
from pydantic import BaseModel
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from contracts import task_queues
from contracts.activities import OrderSagaResult
from ops.bench.bare import (
    BARE_ACTIVITIES,
    BARE_SAGA_WORKFLOW,
    BareSaga,
    BareSagaInput,
    BareSagaResult,
    BareStep,
    bare_activity,
)
from ops.bench.stats import LatencySummary, summarize
from orchestrator.api.models import Address, OrderAccepted, OrderItem, OrderRequest

__all__ = [
    "BENCH_SKUS",
    "LoadFigures",
    "PacingFigures",
    "Progress",
    "ProgressLine",
    "Say",
    "bare_workers",
    "bare_workflow_id",
    "bench_order",
    "in_flight_cap",
    "pacing_schedule",
    "run_bare_sagas",
    "run_orders",
    "run_paced_orders",
]

BENCH_SKUS = ("SKU-1001", "SKU-1002", "SKU-1003")
"""The default stock's SKUs; each bench order takes one unit of one of them, in turn."""

Progress = Callable[[int, int], None]
"""Told ``(finished, total)`` after each saga ends."""

Say = Callable[[str], None]
"""Where a run's progress lines go: ``print``, or the CLI's stderr."""


class ProgressLine:
    """``label: done/total`` on stderr, at most a few times a second (one updating line on a
    terminal)."""

    def __init__(self, label: str, say: Say) -> None:
        self._label = label
        self._say = say
        self._last = 0.0
        self._started = time.monotonic()
        self._tty = sys.stderr.isatty()

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done < total and now - self._last < (0.25 if self._tty else 2.0):
            return
        self._last = now
        rate = done / (now - self._started) if now > self._started else 0.0
        text = f"{self._label}: {done}/{total} finished ({rate:.1f}/s)"
        if self._tty:
            print(f"\r{text}", end="\n" if done >= total else "", file=sys.stderr, flush=True)
        else:
            self._say(text)


class LoadFigures(BaseModel):
    """What one closed-loop run measured."""

    requested: int
    concurrency: int
    finished: int
    completed: int
    cancelled: int
    failed: int
    duration_s: float
    sagas_per_s: float
    latency: LatencySummary | None
    """Accepted to finished, over the completed sagas."""
    accept_latency: LatencySummary | None = None
    """The ``POST /orders`` round trip (orders only)."""
    cancel_reasons: dict[str, int] = {}
    errors: dict[str, int] = {}
    """What went wrong with the sagas that did not finish, by kind (at most a few kinds)."""


@dataclass(frozen=True)
class _Outcome:
    status: str  # COMPLETED, CANCELLED or FAILED
    latency_s: float | None = None
    accept_s: float | None = None
    detail: str | None = None


def bare_workflow_id(run_id: str, index: int) -> str:
    """The id of bare saga ``index`` of a bench run."""
    return f"bare-bench-{run_id}-{index:06d}"


def bench_order(run_id: str, index: int) -> OrderRequest:
    """Order ``index`` of a bench run: one unit of one default SKU, paid with ``tok_visa``."""
    return OrderRequest(
        order_id=f"bench-{run_id}-{index:06d}",
        customer_id=f"bench-{run_id}",
        items=[OrderItem(sku=BENCH_SKUS[index % len(BENCH_SKUS)], quantity=1, unit_price=1999)],
        currency="EUR",
        payment_token="tok_visa",
        shipping_address=Address(country="DE"),
    )


async def _closed_loop(
    count: int,
    concurrency: int,
    run_one: Callable[[int], Awaitable[_Outcome]],
    progress: Progress,
) -> tuple[list[_Outcome], float]:
    indexes = iter(range(count))
    outcomes: list[_Outcome] = []

    async def client() -> None:
        for index in indexes:  # shared: each client takes the next order
            outcomes.append(await run_one(index))
            progress(len(outcomes), count)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(min(concurrency, count))))
    return outcomes, time.perf_counter() - started


def _figures(
    outcomes: list[_Outcome], *, requested: int, concurrency: int, duration: float
) -> LoadFigures:
    statuses = Counter(outcome.status for outcome in outcomes)
    finished = statuses["COMPLETED"] + statuses["CANCELLED"]
    errors = Counter(o.detail or "unknown" for o in outcomes if o.status == "FAILED")
    return LoadFigures(
        requested=requested,
        concurrency=concurrency,
        finished=finished,
        completed=statuses["COMPLETED"],
        cancelled=statuses["CANCELLED"],
        failed=statuses["FAILED"],
        duration_s=round(duration, 3),
        sagas_per_s=round(finished / duration, 2) if duration > 0 else 0.0,
        latency=summarize(
            o.latency_s for o in outcomes if o.status == "COMPLETED" and o.latency_s is not None
        ),
        accept_latency=summarize(o.accept_s for o in outcomes if o.accept_s is not None),
        cancel_reasons=dict(
            Counter(o.detail or "-" for o in outcomes if o.status == "CANCELLED").most_common(5)
        ),
        errors=dict(errors.most_common(5)),
    )


async def _post_order(http: httpx.AsyncClient, request: OrderRequest) -> httpx.Response:
    """``POST /orders``, sent again (twice at most) when the connection failed before an
    answer: safe, because an order id starts one saga however often it is sent."""
    body = request.model_dump(mode="json", exclude_none=True)
    for _ in range(2):
        try:
            return await http.post("/orders", json=body)
        except httpx.TransportError:
            await asyncio.sleep(0.1)
    return await http.post("/orders", json=body)


@contextlib.asynccontextmanager
async def _order_placer(
    api_url: str,
    temporal: Client,
    *,
    run_id: str,
    connections: int,
    headers: Mapping[str, str] | None,
) -> AsyncIterator[Callable[[int], Awaitable[_Outcome]]]:
    """Yields a function that places order ``index`` of the run and waits for its saga."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(
        base_url=api_url, timeout=60.0, limits=limits, headers=headers
    ) as http:

        async def place_and_wait(index: int) -> _Outcome:
            request = bench_order(run_id, index)
            sent = time.perf_counter()
            try:
                response = await _post_order(http, request)
            except httpx.HTTPError as exc:
                return _Outcome("FAILED", detail=f"API: {type(exc).__name__}")
            accepted = time.perf_counter()
            if response.status_code not in (200, 202):
                return _Outcome("FAILED", detail=f"API: HTTP {response.status_code}")
            workflow_id = OrderAccepted.model_validate_json(response.content).workflow_id
            handle = temporal.get_workflow_handle(workflow_id, result_type=OrderSagaResult)
            try:
                result = await handle.result()
            except (WorkflowFailureError, RPCError) as exc:
                return _Outcome("FAILED", detail=f"saga: {type(exc).__name__}")
            return _Outcome(
                result.status.value,
                latency_s=time.perf_counter() - accepted,
                accept_s=accepted - sent,
                detail=result.failed_step,
            )

        yield place_and_wait


async def run_orders(
    api_url: str,
    temporal: Client,
    *,
    run_id: str,
    count: int,
    concurrency: int,
    progress: Progress,
    headers: Mapping[str, str] | None = None,
) -> LoadFigures:
    """Place ``count`` orders through the API and wait for each saga's end.

    ``headers`` are sent with every request: the bearer token's
    (:func:`infra.config.settings.api_headers`).
    """
    async with _order_placer(
        api_url, temporal, run_id=run_id, connections=concurrency, headers=headers
    ) as place_and_wait:
        outcomes, duration = await _closed_loop(count, concurrency, place_and_wait, progress)
    return _figures(outcomes, requested=count, concurrency=concurrency, duration=duration)


def pacing_schedule(count: int, rate: float) -> list[float]:
    """When each of ``count`` orders starts, in seconds from the first: ``rate`` a second,
    evenly spaced.

    Raises:
        ValueError: ``rate`` is not a positive number of orders a second.
    """
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"the rate must be a positive number of orders a second, not {rate}")
    return [index / rate for index in range(count)]


IN_FLIGHT_SECONDS = 10.0
"""The in-flight cap of a paced run allows this many seconds' worth of starts."""


def in_flight_cap(rate: float, concurrency: int) -> int:
    """How many paced orders may be in flight at once: ``IN_FLIGHT_SECONDS`` of starts, and
    never fewer than twice the closed loop's ``concurrency``.

    A stack that keeps up holds about the rate times a saga's latency in flight, well under
    this; one that stalls would otherwise collect an ever-growing number of waiting orders.
    """
    return max(math.ceil(rate * IN_FLIGHT_SECONDS), 2 * concurrency)


class PacingFigures(BaseModel):
    """How closely an open-loop run kept to its schedule."""

    rate_per_s: float
    """The rate asked for."""
    started_per_s: float
    """The rate the orders actually started at (first start to last)."""
    in_flight_cap: int
    peak_in_flight: int
    cap_waits: int
    """Starts held back because ``in_flight_cap`` orders were in flight (0: never hit)."""
    start_delay: LatencySummary | None
    """How late each order started against its scheduled time (the event loop's lateness,
    and the wait at the cap)."""


async def _open_loop(
    schedule: list[float],
    cap: int,
    run_one: Callable[[int], Awaitable[_Outcome]],
    progress: Progress,
) -> tuple[list[_Outcome], float, list[float], int, int]:
    """Start ``run_one(index)`` at each scheduled time, at most ``cap`` at once.

    Returns the outcomes, the duration, each start's delay against its schedule, the
    starts held back by the cap and the peak in flight.
    """
    gate = asyncio.Semaphore(cap)
    outcomes: list[_Outcome] = []
    delays: list[float] = []
    cap_waits = peak = in_flight = 0

    async def one(index: int) -> None:
        nonlocal in_flight
        try:
            outcomes.append(await run_one(index))
            progress(len(outcomes), len(schedule))
        finally:
            in_flight -= 1
            gate.release()

    started = time.perf_counter()
    async with asyncio.TaskGroup() as tasks:
        for index, offset in enumerate(schedule):
            due = started + offset
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            if gate.locked():
                cap_waits += 1
            await gate.acquire()
            delays.append(max(time.perf_counter() - due, 0.0))
            in_flight += 1
            peak = max(peak, in_flight)
            tasks.create_task(one(index))
    return outcomes, time.perf_counter() - started, delays, cap_waits, peak


async def run_paced_orders(
    api_url: str,
    temporal: Client,
    *,
    run_id: str,
    count: int,
    rate: float,
    cap: int,
    progress: Progress,
    headers: Mapping[str, str] | None = None,
) -> tuple[LoadFigures, PacingFigures]:
    """Place ``count`` orders through the API, ``rate`` a second on a fixed schedule (not
    waiting for earlier sagas to end, at most ``cap`` in flight), and wait for every saga.

    The load figures' ``concurrency`` is the cap.

    Raises:
        ValueError: ``rate`` is not positive.
    """
    schedule = pacing_schedule(count, rate)
    async with _order_placer(
        api_url, temporal, run_id=run_id, connections=cap, headers=headers
    ) as place_and_wait:
        outcomes, duration, delays, cap_waits, peak = await _open_loop(
            schedule, cap, place_and_wait, progress
        )
    starts_span = (schedule[-1] + delays[-1] - delays[0]) if len(schedule) > 1 else 0.0
    pacing = PacingFigures(
        rate_per_s=rate,
        started_per_s=round((count - 1) / starts_span, 2) if starts_span > 0 else rate,
        in_flight_cap=cap,
        peak_in_flight=peak,
        cap_waits=cap_waits,
        start_delay=summarize(delays),
    )
    return _figures(outcomes, requested=count, concurrency=cap, duration=duration), pacing


@contextlib.asynccontextmanager
async def bare_workers(
    temporal: Client, run_id: str, dispatch_wait_seconds: float
) -> AsyncIterator[Callable[[str], BareSagaInput]]:
    """Workers of the bare saga on four task queues of this run's own, in this process.

    Yields a function that makes the input of one bare saga.
    """
    place, charge, reserve, schedule, complete = BARE_ACTIVITIES
    queue = {
        name: f"bench-{run_id}-{name}"
        for name in (
            task_queues.ORCHESTRATOR,
            task_queues.PAYMENT,
            task_queues.INVENTORY,
            task_queues.SHIPPING,
        )
    }
    before = [
        BareStep(place, queue[task_queues.ORCHESTRATOR]),
        BareStep(charge, queue[task_queues.PAYMENT]),
        BareStep(reserve, queue[task_queues.INVENTORY]),
        BareStep(schedule, queue[task_queues.SHIPPING]),
    ]
    after = [BareStep(complete, queue[task_queues.ORCHESTRATOR])]
    by_queue: dict[str, list[str]] = {}
    for step in (*before, *after):
        by_queue.setdefault(step.task_queue, []).append(step.activity)
    # The bench package is imported already and has no side effects on import; sharing it
    # keeps the sandbox from importing the bench's clients inside every workflow run.
    runner = SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules("ops.bench")
    )
    async with contextlib.AsyncExitStack() as stack:
        for task_queue, names in by_queue.items():
            is_home = task_queue == queue[task_queues.ORCHESTRATOR]
            await stack.enter_async_context(
                Worker(
                    temporal,
                    task_queue=task_queue,
                    activities=[bare_activity(name) for name in dict.fromkeys(names)],
                    workflows=[BareSaga] if is_home else [],
                    workflow_runner=runner,
                )
            )

        def saga_input(order_id: str) -> BareSagaInput:
            return BareSagaInput(
                order_id=order_id,
                steps_before_dispatch=before,
                steps_after_dispatch=after,
                dispatch_wait_seconds=dispatch_wait_seconds,
            )

        yield saga_input


async def run_bare_sagas(
    temporal: Client,
    *,
    run_id: str,
    count: int,
    concurrency: int,
    dispatch_wait_seconds: float,
    progress: Progress,
) -> LoadFigures:
    """Run ``count`` bare sagas at ``concurrency`` with this process's own workers."""
    async with bare_workers(temporal, run_id, dispatch_wait_seconds) as saga_input:
        home = saga_input("-").steps_before_dispatch[0].task_queue

        async def start_and_wait(index: int) -> _Outcome:
            workflow_id = bare_workflow_id(run_id, index)
            try:
                handle = await temporal.start_workflow(
                    BARE_SAGA_WORKFLOW,
                    saga_input(workflow_id),
                    id=workflow_id,
                    task_queue=home,
                    result_type=BareSagaResult,
                )
            except RPCError as exc:
                return _Outcome("FAILED", detail=f"start: {exc.status.name}")
            accepted = time.perf_counter()
            try:
                await handle.result()
            except (WorkflowFailureError, RPCError) as exc:
                return _Outcome("FAILED", detail=f"workflow: {type(exc).__name__}")
            return _Outcome("COMPLETED", latency_s=time.perf_counter() - accepted)

        outcomes, duration = await _closed_loop(count, concurrency, start_and_wait, progress)
    return _figures(outcomes, requested=count, concurrency=concurrency, duration=duration)
