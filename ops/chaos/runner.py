"""``saga chaos``: steady orders through the API while every part of the stack is hurt in turn.

The run, against a stack that ``saga up`` started (embedded Kafka and Temporal, so that
they can be killed too):

1. ``concurrency`` clients place ``orders`` orders and follow each saga to its end
   (:class:`~ops.chaos.load.ChaosLoad`);
2. meanwhile, one fault at a time, at random points of the run's progress, each process is
   killed with ``SIGKILL`` and restarted by ``saga up``, and one service is frozen with
   ``SIGSTOP`` long enough for its activities' time-outs to fire
   (:mod:`ops.chaos.faults`);
3. when every client is done, the outboxes drain, and ``saga audit`` checks the books of
   the run's orders.

A saga is lost when its order was accepted and it did not end (or ended FAILED) by the
run's deadline. The run passes with every fault struck, no saga lost and no violation.
"""

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from contracts.topics import TOPICS, dlq_topic
from infra.config.databases import SERVICES as DATABASE_OWNERS
from infra.config.databases import database_url
from infra.config.kafka import KafkaTarget, kafka_connection
from infra.config.logs import temporal_core_logging
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from infra.engines.processes import ProcessTable
from infra.engines.stack import ENGINES, Stack
from ops.audit import run_audit
from ops.bench.load import ProgressLine, Say
from ops.bench.observe import scrape_metrics
from ops.chaos.faults import (
    KILL_TARGETS,
    PAUSE_TARGETS,
    Fault,
    FaultKind,
    FaultResult,
    inject,
    plan_faults,
)
from ops.chaos.load import ChaosLoad
from ops.snapshot import stop_groupless, topic_partitions
from orchestrator.queries import STORE_SCHEMAS
from runtime import (
    BookReader,
    EventCounts,
    Where,
    new_consumer,
    wait_for_kafka,
    wait_for_temporal,
)

__all__ = [
    "ChaosError",
    "ChaosOptions",
    "ChaosReport",
    "connect_quietly",
    "event_counts",
    "family_total",
    "outbox_pending",
    "render_text",
    "run_chaos",
    "service_metrics",
]


async def connect_quietly(settings: Settings) -> Client:
    """A client of the stack's Temporal whose runtime logs only the core's errors: while
    Temporal is down on purpose, every call's retries would otherwise print a warning."""
    return await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=10,
        data_converter=data_converter(settings),
        runtime=Runtime(telemetry=TelemetryConfig(logging=temporal_core_logging("ERROR"))),
    )


def service_metrics(stack: Stack, names: Iterable[str]) -> dict[str, str]:
    """The ``/metrics`` of each process of ``names`` that serves one (not the engines)."""
    urls = {name: stack.metrics_urls(name) for name in names if name not in ENGINES}
    return {name: found[0] for name, found in urls.items() if found}


class ChaosError(Exception):
    """The chaos run cannot start as asked; the message says what to do."""


@dataclass(frozen=True)
class ChaosOptions:
    """What ``saga chaos`` was asked to do."""

    orders: int = 200
    concurrency: int = 20
    kills: tuple[str, ...] = KILL_TARGETS
    pauses: tuple[str, ...] = PAUSE_TARGETS
    down_s: tuple[float, float] = (1.0, 3.0)
    """A killed process stays down for a random time in this range before ``saga up``."""
    pause_s: float = 35.0
    """How long a paused process stays frozen: beyond an activity attempt's 30 s time-out,
    so that Temporal gives the work it holds to another attempt."""
    seed: int | None = None
    timeout_s: float | None = None
    """The whole run's limit: sagas not ended by then are counted lost. ``None``: ten minutes
    for the faults plus 0.75 s per order (2,000 orders: 35 minutes)."""

    @property
    def limit_s(self) -> float:
        """The run's limit in seconds, given or derived from the order count."""
        return self.timeout_s if self.timeout_s is not None else 600.0 + 0.75 * self.orders


class OrderFigures(BaseModel):
    """The run's orders and how their sagas ended."""

    placed: int
    accepted: int
    refused: dict[str, int]
    completed: int
    cancelled: int
    failed: int
    lost: int
    lost_orders: list[str]
    sagas_per_s: float


class EventFigures(BaseModel):
    """The run's events, counted where they are kept (outbox, inbox and Kafka)."""

    published: int
    """Events of the run's orders that the outboxes marked sent (Kafka acknowledged them)."""
    consumed: int
    """Events the consumer groups handled during the run (their inboxes)."""
    dead_letters: int
    """Records written to the dead-letter topics during the run."""
    outbox_pending: int
    """Events still waiting in an outbox when the run ended (0 once drained)."""


class DuplicateFigures(BaseModel):
    """Work done twice by the faults, and absorbed rather than repeated."""

    order_retries: int
    """``POST /orders`` sent again after an error or no answer."""
    orders_answered_existing: int
    """Of those, the ones whose earlier try had started the saga: answered 200, not twice."""
    events_redelivered: int
    """Events delivered again to a consumer group and dropped by its inbox (the services'
    ``events_duplicate_total``, scraped every 2 s; increments in the last 2 s before a kill
    are not seen)."""


class AuditFigures(BaseModel):
    """``saga audit`` over the run's orders."""

    checked_orders: int
    in_flight: int
    violations: list[dict[str, str]]


class ChaosReport(BaseModel):
    """Everything one ``saga chaos`` run did and found."""

    run_id: str
    started_at: str
    seed: int
    duration_s: float
    orders: OrderFigures
    faults: list[FaultResult]
    faults_planned: list[str]
    events: EventFigures
    duplicates: DuplicateFigures
    audit: AuditFigures
    passed: bool
    problems: list[str]


@dataclass
class _CounterWatch:
    """One counter family summed over every process, across their restarts (like
    Prometheus' ``increase()``: a total that went down is a process that started again)."""

    metric: str
    urls: dict[str, str]
    increase: float = 0.0
    _last: dict[str, float] = field(default_factory=dict)

    async def sample(self) -> None:
        texts = await scrape_metrics(self.urls)
        for process, text in texts.items():
            if text is None:
                continue
            total = family_total(text, self.metric)
            last = self._last.get(process)
            if last is not None:
                self.increase += total - last if total >= last else total
            self._last[process] = total

    async def watch(self, every_s: float = 2.0) -> None:
        while True:
            await self.sample()
            await asyncio.sleep(every_s)


def family_total(text: str, metric: str) -> float:
    """The sum of every series of ``metric`` (a counter's ``*_total`` or a gauge) in a scrape."""
    name = metric.removesuffix("_total")
    total = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == name:
            total += sum(s.value for s in family.samples if s.name == metric)
    return total


def _stores(settings: Settings) -> list[tuple[Where, str | None]]:
    """Every store of the stack, as a database and a schema: each SQLite file of the run
    directory (not in the cluster topology, whose stores are all on PostgreSQL: files left by
    an embedded stack that ran there before are not its), and each service's PostgreSQL
    database that the settings or the run directory name, every schema of the orchestrator's."""
    stores: list[tuple[Where, str | None]] = []
    if settings.topology != "cluster":
        stores += [(path, None) for path in sorted(settings.run_dir.resolve().glob("*.db"))]
    for service in DATABASE_OWNERS:
        url = database_url(settings, service)
        if url is not None:
            schemas = STORE_SCHEMAS if service == "orchestrator" else (None,)
            stores += [(url, schema) for schema in schemas]
    return stores


def event_counts(
    settings: Settings, *, order_prefix: str = "", handled_since: float = 0.0
) -> EventCounts:
    """The outboxes' and inboxes' counts (:meth:`runtime.BookReader.event_counts`), summed
    over every store of the stack, on SQLite or PostgreSQL.

    Raises:
        BookUnreadable: a store cannot be read (its database is down).
    """
    total = EventCounts()
    for database, schema in _stores(settings):
        with BookReader.open(database, schema=schema) as book:
            total += book.event_counts(order_prefix=order_prefix, handled_since=handled_since)
    return total


def outbox_pending(settings: Settings) -> int:
    """Events waiting in the outboxes of every store of the stack.

    Raises:
        BookUnreadable: a store cannot be read (its database is down).
    """
    return event_counts(settings).pending


async def _dead_letter_ends(bootstrap_servers: KafkaTarget) -> int:
    """The sum of the dead-letter topics' end offsets (records ever written to them)."""
    partitions = await topic_partitions(
        bootstrap_servers, [dlq_topic(spec.name) for spec in TOPICS]
    )
    consumer = new_consumer(bootstrap_servers, None)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await stop_groupless(consumer)


async def _wait_outboxes_drained(settings: Settings, seconds: float) -> int:
    deadline = time.monotonic() + seconds
    pending = outbox_pending(settings)
    while pending and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        pending = outbox_pending(settings)
    return pending


def _thresholds(faults: int, orders: int, rng: random.Random) -> list[int]:
    """The progress (sagas finished) at which each fault strikes: spread over 5%-75% of the
    run, each at a random point of its own slice."""
    span = 0.70 / max(faults, 1)
    return [int(orders * (0.05 + span * (i + rng.random() * 0.8))) for i in range(faults)]


async def _strike_all(
    faults: list[Fault],
    load: ChaosLoad,
    loading: "asyncio.Task[None]",
    stack: Stack,
    table: ProcessTable,
    options: ChaosOptions,
    rng: random.Random,
    started: float,
    say: Say,
) -> list[FaultResult]:
    results = []
    for fault, threshold in zip(faults, _thresholds(len(faults), options.orders, rng), strict=True):
        # A fifth of a second late is as random as any other moment.
        while load.finished < threshold and not loading.done():  # noqa: ASYNC110
            await asyncio.sleep(0.2)
        down = rng.uniform(*options.down_s) if fault.kind is FaultKind.KILL else options.pause_s
        say(f"fault: {fault} after {load.finished} sagas ({down:.1f} s)")
        result = await inject(
            fault, stack, table, down_s=down, started=started, finished=lambda: load.finished
        )
        results.append(result)
        say(
            f"fault: {fault} over"
            + (
                f", healthy again {result.restart_s:.1f} s after restart"
                if result.restart_s
                else ""
            )
        )
    return results


def _recovery(results: list[FaultResult], finish_times: list[float], started: float) -> None:
    """Fill each fault's time to the first saga that finished after the component was back."""
    for index, result in enumerate(results):
        struck = started + result.at_s
        back = struck + result.down_s + (result.restart_s or 0.0)
        after = next((t for t in finish_times if t >= back), None)
        results[index] = result.model_copy(
            update={"recovered_s": round(after - struck, 2) if after is not None else None}
        )


def _check_restartable(stack: Stack, settings: Settings, options: ChaosOptions) -> None:
    """Refuse a run whose kills would lose what a real deployment keeps, by design of the
    set-up rather than by a fault of the project: a Temporal without storage, or a process
    that `Stack.up()` would bring back with other settings than those it runs with."""
    if "temporal" in options.kills and settings.temporal_storage == "memory":
        raise ChaosError(
            "Temporal keeps its histories in memory (SAGA_TEMPORAL_STORAGE=memory), so killing it "
            "loses every running saga by design: set SAGA_TEMPORAL_STORAGE=file and restart the "
            "stack (`saga down && saga up`), or leave temporal out with --kill"
        )
    drifted = sorted(
        name for name in {*options.kills, *options.pauses} if stack.started_otherwise(name)
    )
    if drifted:
        raise ChaosError(
            f"{', '.join(drifted)} run with other settings than these (for example Temporal "
            "started in memory while SAGA_TEMPORAL_STORAGE says file), so a restart would not "
            "bring back what was killed: run `saga down && saga up` with these settings first"
        )


async def run_chaos(settings: Settings, options: ChaosOptions, *, say: Say) -> ChaosReport:
    """Run the chaos described by ``options`` against the stack of ``settings``.

    Raises:
        ChaosError: the stack is not up, or a fault's target is not one of its processes.
    """
    if options.orders < 1 or options.concurrency < 1:
        raise ChaosError("--orders and --concurrency must be at least 1")
    stack = Stack(settings, say=lambda _: None)
    table = ProcessTable(settings.run_dir.resolve())
    statuses = {status.name: status for status in stack.status()}
    not_running = [
        name for name in (*options.kills, *options.pauses)
        if statuses.get(name) is None or statuses[name].pid is None
        or statuses[name].state not in ("running", "unhealthy")
    ]  # fmt: skip
    if not_running:
        raise ChaosError(
            "not running processes of this stack: " + ", ".join(sorted(set(not_running)))
            + ". Start the stack with `saga up` (embedded Kafka and Temporal, so that they can be "
            "killed too), or leave them out with --kill/--pause"
        )  # fmt: skip
    _check_restartable(stack, settings, options)
    await wait_for_kafka(kafka_connection(settings), wait_seconds=10)
    temporal = await connect_quietly(settings)

    seed = options.seed if options.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    began = datetime.now(UTC)
    run_id = f"{began:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    faults = plan_faults(rng, options.kills, options.pauses)
    say(
        f"chaos {run_id} (seed {seed}): {options.orders} orders, {options.concurrency} at once; "
        f"faults: {', '.join(map(str, faults))}"
    )
    dead_letters_before = await _dead_letter_ends(kafka_connection(settings))
    redelivered = _CounterWatch("events_duplicate_total", service_metrics(stack, statuses))
    await redelivered.sample()

    started = time.monotonic()
    wall_start = time.time()
    load = ChaosLoad(
        settings=settings,
        temporal=temporal,
        run_id=run_id,
        count=options.orders,
        concurrency=options.concurrency,
        deadline=started + options.limit_s,
        progress=ProgressLine("sagas", say),
    )
    loading = asyncio.create_task(load.run(), name="chaos-load")
    watching = asyncio.create_task(redelivered.watch(), name="chaos-counters")
    problems: list[str] = []
    results: list[FaultResult] = []
    try:
        results = await _strike_all(faults, load, loading, stack, table, options, rng, started, say)
        await loading
    except BaseException:
        loading.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await loading
        raise
    finally:
        watching.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watching
    duration = time.monotonic() - started
    await redelivered.sample()
    _recovery(results, load.finish_times, started)

    say("waiting for the outboxes to drain")
    pending = await _wait_outboxes_drained(settings, 60)
    say("auditing the run's orders")
    audit = await run_audit(settings, wait_seconds=60, orders=set(load.accepted))

    counts = event_counts(settings, order_prefix=f"chaos-{run_id}-", handled_since=wall_start)
    published, consumed = counts.published, counts.handled
    dead_letters = await _dead_letter_ends(kafka_connection(settings)) - dead_letters_before

    lost_orders = load.lost_orders()
    struck = {f"{r.kind} {r.target}" for r in results}
    missing = [str(fault) for fault in faults if str(fault) not in struck]
    if lost_orders:
        problems.append(f"{len(lost_orders)} sagas lost (accepted, not ended): {lost_orders[:5]}")
    if audit.violations:
        problems.append(f"{len(audit.violations)} audit violations")
    if audit.in_flight or audit.not_found:
        problems.append(
            f"audit: {len(audit.in_flight)} sagas still in flight, "
            f"{len(audit.not_found)} orders no source knows of"
        )
    if missing:
        problems.append(f"faults not struck: {', '.join(missing)}")
    if pending:
        problems.append(f"{pending} events still in an outbox 60 s after the run")
    completed, cancelled = load.ended("COMPLETED"), load.ended("CANCELLED")
    return ChaosReport(
        run_id=run_id,
        started_at=began.isoformat(timespec="seconds"),
        seed=seed,
        duration_s=round(duration, 2),
        orders=OrderFigures(
            placed=options.orders,
            accepted=len(load.accepted),
            refused=dict(load.refused),
            completed=completed,
            cancelled=cancelled,
            failed=load.ended("FAILED"),
            lost=len(lost_orders),
            lost_orders=lost_orders,
            sagas_per_s=round((completed + cancelled) / duration, 2) if duration else 0.0,
        ),
        faults=results,
        faults_planned=[str(fault) for fault in faults],
        events=EventFigures(
            published=published,
            consumed=consumed,
            dead_letters=dead_letters,
            outbox_pending=pending,
        ),
        duplicates=DuplicateFigures(
            order_retries=load.api_retries,
            orders_answered_existing=load.answered_existing,
            events_redelivered=round(redelivered.increase),
        ),
        audit=AuditFigures(
            checked_orders=audit.checked_orders,
            in_flight=len(audit.in_flight),
            violations=[
                {"order_id": v.order_id, "kind": str(v.kind), "detail": v.detail}
                for v in audit.violations
            ],
        ),
        passed=not problems,
        problems=problems,
    )


def render_text(report: ChaosReport) -> str:
    """The report as tables for people."""
    o, e, d, a = report.orders, report.events, report.duplicates, report.audit
    lines = [
        f"chaos {report.run_id} (seed {report.seed}): {report.duration_s:.0f} s, "
        + ("PASSED" if report.passed else "FAILED"),
        "",
        "| orders | |",
        "|---|---|",
        f"| placed / accepted | {o.placed} / {o.accepted} |",
        f"| completed / cancelled / failed | {o.completed} / {o.cancelled} / {o.failed} |",
        f"| sagas lost | {o.lost} |",
        f"| sagas/s | {o.sagas_per_s:g} |",
        "",
        "| fault | at s | down s | restart s | recovered s |",
        "|---|---|---|---|---|",
        *(
            f"| {f.kind} {f.target} (pid {f.pid}) | {f.at_s:g} | {f.down_s:g} | "
            f"{'-' if f.restart_s is None else f'{f.restart_s:g}'} | "
            f"{'-' if f.recovered_s is None else f'{f.recovered_s:g}'} |"
            for f in report.faults
        ),
        "",
        "| events and duplicates | |",
        "|---|---|",
        f"| events published / consumed | {e.published} / {e.consumed} |",
        f"| dead letters | {e.dead_letters} |",
        f"| orders sent again / answered with the existing saga | "
        f"{d.order_retries} / {d.orders_answered_existing} |",
        f"| events redelivered, dropped by an inbox | {d.events_redelivered} |",
        "",
        f"audit: {a.checked_orders} orders checked, {a.in_flight} in flight, "
        f"{len(a.violations)} violations",
        *(f"  {v['order_id']}: {v['kind']}: {v['detail']}" for v in a.violations),
        *(f"problem: {problem}" for problem in report.problems),
    ]
    return "\n".join(lines)
