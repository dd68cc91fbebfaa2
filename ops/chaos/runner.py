"""``saga chaos``: steady orders through the API while every part of the stack is hurt in turn.

The run, against a stack that ``saga up`` started (embedded Kafka and Temporal, so that
they can be killed too; or the cluster topology, whose every engine is the stack's own):

1. ``concurrency`` clients place ``orders`` orders and follow each saga to its end
   (:class:`~ops.chaos.load.ChaosLoad`); a share (``returns``) of the orders that complete
   get a return, made to complete, expire (a lost parcel) or be rejected (more than bought),
   placed while the next orders go on, and followed to its end too;
2. meanwhile, one fault at a time, at random points of the run's progress, each process is
   killed with ``SIGKILL`` and restarted by ``saga up``, and one service is frozen with
   ``SIGSTOP`` long enough for its activities' time-outs to fire
   (:mod:`ops.chaos.faults`); in the cluster topology a Kafka broker, later the active
   controller, Temporal's server, PostgreSQL and each copy of each service, and, if asked,
   most of the Kafka nodes at once for a while (``brokers_down``);
3. after each fault, the next waits until the consumer groups' lag (committed offsets
   against the partitions' ends) is back under ``lag_limit``;
4. when every client is done, the outboxes drain, ``saga audit`` checks the books of the
   run's orders (their returns' too), every event an outbox marked sent (Kafka acknowledged
   it) is looked for on Kafka, and each return is looked at through ``GET /returns/{id}``:
   it must have ended as it was made to, with each event of that end once.

A saga is lost when its order (or return) was accepted and it did not end (or ended FAILED)
by the run's deadline. The run passes with every fault struck, no saga lost, every return
ended as made to with its events, no violation, no dead letter, no acknowledged event
missing from Kafka and the lag back under its limit after each fault.
"""

import asyncio
import contextlib
import dataclasses
import functools
import logging
import random
import statistics
import time
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.runtime import Runtime, TelemetryConfig

from contracts.activities import ReturnOutcome
from contracts.topics import TOPICS, dlq_topic
from infra.config.databases import SERVICES as DATABASE_OWNERS
from infra.config.databases import database_url
from infra.config.kafka import KafkaTarget, kafka_connection
from infra.config.logs import temporal_core_logging
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings, kept_topology
from infra.config.temporal import temporal_connection
from infra.engines.processes import ProcessTable
from infra.engines.stack import ENGINES, KAFKA_NODES, Stack
from ops.audit import ViolationKind, run_audit
from ops.audit.collectors import read_events
from ops.bench.load import ProgressLine, Say
from ops.bench.observe import LagSampler, scrape_metrics
from ops.chaos.faults import (
    KAFKA_BROKER,
    KAFKA_CONTROLLER,
    Fault,
    FaultKind,
    FaultResult,
    inject,
    kafka_role,
    kill_targets,
    known_targets,
    pause_targets,
    plan_faults,
    processes_of,
)
from ops.chaos.load import RETURN_EVENTS, ChaosLoad, ReturnSeen, check_returns
from ops.snapshot import stop_groupless, topic_partitions
from orchestrator.queries import STORE_SCHEMAS
from runtime import (
    BookReader,
    BookUnreadable,
    EventCounts,
    SchemaRegistry,
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


_RETURN_CHECKS = (
    ViolationKind.OVER_REFUNDED,
    ViolationKind.RESTOCK_MISMATCH,
    ViolationKind.RETURN_REFUND_MISMATCH,
)
"""The audit's checks of returns, named on the report's audit line."""


class ChaosError(Exception):
    """The chaos run cannot start as asked; the message says what to do."""


@dataclass(frozen=True)
class ChaosOptions:
    """What ``saga chaos`` was asked to do."""

    orders: int = 200
    concurrency: int = 20
    kills: tuple[str, ...] | None = None
    """What to kill, each once; None: every process of the embedded stack, or the cluster
    plan (:func:`ops.chaos.faults.kill_targets`)."""
    pauses: tuple[str, ...] | None = None
    """What one is paused; None: a service (any copy of one in the cluster topology)."""
    brokers_down: int = 0
    """Cluster topology: Kafka nodes killed together for the outage scenario (2 leaves one
    of three: fewer than ``min.insync.replicas``, and no controller quorum); 0: none."""
    outage_s: float = 30.0
    """How long those nodes stay down."""
    lag_limit: int = 1000
    """After each fault, the consumer lag must come back under this many records..."""
    lag_wait_s: float = 180.0
    """...within this many seconds of the component being back."""
    down_s: tuple[float, float] = (1.0, 3.0)
    """A killed process stays down for a random time in this range before ``saga up``."""
    pause_s: float = 35.0
    """How long a paused process stays frozen: beyond an activity attempt's 30 s time-out,
    so that Temporal gives the work it holds to another attempt."""
    returns: float = 0.3
    """The share of the orders that complete which get a return (0 to 1; 0: none)."""
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


class ReturnFigures(BaseModel):
    """The run's returns and how their sagas ended, as ``GET /returns/{id}`` showed them."""

    asked: int
    """Returns asked for: one per order that was to get one and completed."""
    not_asked: int
    """Orders that were to get a return but did not complete."""
    accepted: int
    refused: dict[str, int]
    completed: int
    expired: int
    rejected: int
    other: int
    """Ended otherwise (CANCELLED, FAILED)."""
    lost: int
    """Accepted and not seen to end by the run's deadline."""
    lost_returns: list[str]
    expected: dict[str, int]
    """How many were made to end each way (COMPLETED, EXPIRED, REJECTED)."""
    unexpected: list[str]
    """Returns that ended otherwise than made to, or whose events (``GET /returns/{id}``)
    are not those of their end each once."""
    events_seen: int
    """Events naming the run's returns, in their views."""
    events_expected: int
    """Events their ends imply (:data:`ops.chaos.load.RETURN_EVENTS`)."""
    seconds_p50: float | None = None
    """Seconds from asking for a return to seeing its saga end, median..."""
    seconds_max: float | None = None
    """...and longest."""
    last_order_end_s: float | None = None
    """When the last order's saga was seen to end, in seconds from the run's start..."""
    last_return_end_s: float | None = None
    """...and the last return's: the returns' tail after the orders."""


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
    on_kafka: int | None = None
    """Events of the run's orders found on Kafka's domain topics (each once)."""
    acknowledged_lost: int | None = None
    """Events an outbox marked sent (Kafka acknowledged them) that are not on Kafka."""


class DuplicateFigures(BaseModel):
    """Work done twice by the faults, and absorbed rather than repeated."""

    order_retries: int
    """``POST /orders`` sent again after an error or no answer."""
    orders_answered_existing: int
    """Of those, the ones whose earlier try had started the saga: answered 200, not twice."""
    return_retries: int = 0
    """``POST /orders/{id}/returns`` sent again after an error or no answer."""
    returns_answered_existing: int = 0
    """Of those, the ones answered 200 with the saga the earlier try had started."""
    events_redelivered: int
    """Events delivered again to a consumer group and dropped by its inbox (the services'
    ``events_duplicate_total``, scraped every 2 s; increments in the last 2 s before a kill
    are not seen)."""


class AuditFigures(BaseModel):
    """``saga audit`` over the run's orders."""

    checked_orders: int
    in_flight: int
    violations: list[dict[str, str]]
    counts: dict[str, int] = {}
    """Violations per check, for every check that ran (the return checks among them)."""


class ChaosReport(BaseModel):
    """Everything one ``saga chaos`` run did and found."""

    run_id: str
    started_at: str
    topology: str = "embedded"
    seed: int
    duration_s: float
    orders: OrderFigures
    returns: ReturnFigures | None = None
    """None in reports of runs without returns (before they were in the mix)."""
    faults: list[FaultResult]
    faults_planned: list[str]
    lag_limit: int = 1000
    """The consumer lag every fault had to come back under."""
    lag_groups: list[str] = []
    """The consumer groups whose lag was sampled."""
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


@dataclass
class _Strikes:
    """What striking the faults one after another needs, and what it saw."""

    settings: Settings
    stack: Stack
    table: ProcessTable
    options: ChaosOptions
    rng: random.Random
    started: float
    say: Say
    load: ChaosLoad
    loading: "asyncio.Task[None]"
    lag: LagSampler
    metrics: dict[str, str]
    """The services' ``/metrics``: their publish errors are counted during an outage."""
    order_prefix: str

    async def strike_all(self, faults: list[Fault]) -> list[FaultResult]:
        """Strike each fault when its share of the sagas has finished; after each, wait for
        the consumer lag to come back under the limit."""
        results = []
        thresholds = _thresholds(len(faults), self.options.orders, self.rng)
        for fault, threshold in zip(faults, thresholds, strict=True):
            # A fifth of a second late is as random as any other moment.
            while self.load.finished < threshold and not self.loading.done():  # noqa: ASYNC110
                await asyncio.sleep(0.2)
            result = await self._strike(fault)
            results.append(result)
            lag = (
                f"lag back under {self.options.lag_limit} after {result.lag_settled_s:g} s "
                f"(peak {result.lag_peak})"
                if result.lag_settled_s is not None
                else f"lag not back under {self.options.lag_limit} (peak {result.lag_peak})"
            )
            restart = (
                f"healthy again {result.restart_s:.1f} s after restart, "
                if result.restart_s
                else ""
            )
            self.say(f"fault: {fault} over, {restart}{lag}")
        return results

    async def _strike(self, fault: Fault) -> FaultResult:
        options = self.options
        down = {
            FaultKind.KILL: lambda: self.rng.uniform(*options.down_s),
            FaultKind.PAUSE: lambda: options.pause_s,
            FaultKind.BROKERS_DOWN: lambda: options.outage_s,
        }[fault.kind]()
        controller = self.stack.kafka_controller() if kafka_role(fault) else None
        names = processes_of(fault, controller, self.rng)
        struck_names = "" if names == [fault.target] else f" ({', '.join(names)})"
        self.say(f"fault: {fault}{struck_names} after {self.load.finished} sagas ({down:.1f} s)")
        outage = _OutageWatch(self.settings, self.order_prefix, self.metrics)
        if fault.kind is FaultKind.BROKERS_DOWN:
            await outage.start()
        result = await inject(
            fault,
            self.stack,
            self.table,
            down_s=down,
            started=self.started,
            finished=lambda: self.load.finished,
            processes=names,
            while_down=outage.watch if fault.kind is FaultKind.BROKERS_DOWN else None,
            until_back=functools.partial(self._nodes_answer, names),
        )
        struck = self.started + result.at_s
        back = struck + result.down_s + (result.restart_s or 0.0)
        peak, settled = await self._lag_after(struck, back)
        update: dict[str, object] = {
            "lag_peak": peak,
            "lag_settled_s": settled,
            "controller": controller,
        }
        if fault.kind is FaultKind.BROKERS_DOWN:
            update |= outage.figures()
            update["backlog_after"] = await _pending_now(self.settings)
            self.say(
                f"fault: {fault}: outbox backlog {outage.before} before, {outage.peak} at most "
                f"while down, {update['backlog_after']} once the lag settled; "
                f"{update['publish_errors']} failed publishes, {update['published_during']} "
                "of the run's events marked sent meanwhile"
            )
        return result.model_copy(update=update)

    async def _nodes_answer(self, names: list[str]) -> None:
        """Wait until each Kafka node of ``names`` answers a metadata request itself: the
        cluster's metadata lists a node killed a few seconds ago as alive until its session
        expires, so ``saga up`` finds three brokers before the one it started is up."""
        ports = dict(zip(KAFKA_NODES, self.settings.kafka_node_ports(), strict=True))
        for name in names:
            if name in ports:
                node = dataclasses.replace(
                    kafka_connection(self.settings), bootstrap_servers=f"127.0.0.1:{ports[name]}"
                )
                await wait_for_kafka(node, wait_seconds=self.settings.startup_timeout_seconds)

    async def _lag_after(self, struck: float, back: float) -> tuple[int | None, float | None]:
        """The highest lag sampled from ``struck`` until a sample taken after ``back`` was
        under the limit, and the seconds from ``struck`` to that sample (None: not within
        ``lag_wait_s``)."""
        deadline = back + self.options.lag_wait_s
        while True:
            history = list(self.lag.history)
            under = next(
                (at for at, lag in history if at >= back and lag < self.options.lag_limit), None
            )
            if under is not None or time.monotonic() > deadline:
                until = under if under is not None else time.monotonic()
                seen = [lag for at, lag in history if struck <= at <= until]
                peak = max(seen) if seen else None
                return peak, round(under - struck, 2) if under is not None else None
            await asyncio.sleep(0.5)


async def _pending_now(settings: Settings) -> int | None:
    """Events waiting in the outboxes now; None if a store cannot be read."""
    try:
        return await asyncio.to_thread(outbox_pending, settings)
    except BookUnreadable:
        return None


@dataclass
class _OutageWatch:
    """The outboxes and the relays' publish errors while Kafka nodes are down: sampled every
    second, so that the last sample is the outage's end."""

    settings: Settings
    order_prefix: str
    metrics: dict[str, str]
    before: int | None = None
    peak: int | None = None
    _published_before: int | None = None
    _published_last: int | None = None
    _errors: "_CounterWatch | None" = None

    async def start(self) -> None:
        """Read the outboxes and the error counters as they are before the outage."""
        self._errors = _CounterWatch("events_publish_errors_total", self.metrics)
        await self._errors.sample()
        counts = await self._counts()
        if counts is not None:
            self.before = counts.pending

    async def watch(self) -> None:
        """Sample until cancelled, from the moment the nodes are down (the events marked sent
        are counted from there: a batch acknowledged as the nodes died is not the outage's)."""
        while True:
            counts = await self._counts()
            if counts is not None:
                self.peak = max(self.peak or 0, counts.pending)
                if self._published_before is None:
                    self._published_before = counts.published
                self._published_last = counts.published
            if self._errors is not None:
                await self._errors.sample()
            await asyncio.sleep(1.0)

    def figures(self) -> dict[str, int | None]:
        """The outage's figures, as :class:`FaultResult` fields."""
        published = None
        if self._published_before is not None and self._published_last is not None:
            published = self._published_last - self._published_before
        return {
            "backlog_before": self.before,
            "backlog_peak": self.peak,
            "published_during": published,
            "publish_errors": round(self._errors.increase) if self._errors is not None else None,
        }

    async def _counts(self) -> EventCounts | None:
        try:
            return await asyncio.to_thread(
                event_counts, self.settings, order_prefix=self.order_prefix
            )
        except BookUnreadable:
            return None


def _recovery(results: list[FaultResult], finish_times: list[float], started: float) -> None:
    """Fill each fault's time to the first saga that finished after the component was back."""
    for index, result in enumerate(results):
        struck = started + result.at_s
        back = struck + result.down_s + (result.restart_s or 0.0)
        after = next((t for t in finish_times if t >= back), None)
        results[index] = result.model_copy(
            update={"recovered_s": round(after - struck, 2) if after is not None else None}
        )


def _processes_behind(target: str) -> list[str]:
    """The processes a target may strike: a Kafka node's role stands for every node."""
    return list(KAFKA_NODES) if target in (KAFKA_BROKER, KAFKA_CONTROLLER) else [target]


def _check_restartable(
    stack: Stack, settings: Settings, targets: tuple[str, ...], kills: tuple[str, ...]
) -> None:
    """Refuse a run whose kills would lose what a real deployment keeps, by design of the
    set-up rather than by a fault of the project: a Temporal without storage, or a process
    that `Stack.up()` would bring back with other settings than those it runs with."""
    if (
        "temporal" in kills
        and settings.topology != "cluster"
        and settings.temporal_storage == "memory"
    ):
        raise ChaosError(
            "Temporal keeps its histories in memory (SAGA_TEMPORAL_STORAGE=memory), so killing it "
            "loses every running saga by design: set SAGA_TEMPORAL_STORAGE=file and restart the "
            "stack (`saga down && saga up`), or leave temporal out with --kill"
        )
    drifted = sorted(name for name in targets if stack.started_otherwise(name))
    if drifted:
        raise ChaosError(
            f"{', '.join(drifted)} run with other settings than these (for example Temporal "
            "started in memory while SAGA_TEMPORAL_STORAGE says file), so a restart would not "
            "bring back what was killed: run `saga down && saga up` with these settings first"
        )


def _check_plan(
    stack: Stack, settings: Settings, options: ChaosOptions
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The run's kills and pauses (the topology's by default), once every target is known,
    running and restartable as it runs.

    Raises:
        ChaosError: what is wrong, and what to do.
    """
    kept = kept_topology(settings.run_dir)
    if kept is not None and kept != settings.topology:
        raise ChaosError(
            f"the stack in {settings.run_dir} is the {kept} topology, not the "
            f"{settings.topology} one: run `saga chaos --topology {kept}`, or start the "
            f"{settings.topology} topology there first"
        )
    kills = options.kills if options.kills is not None else kill_targets(stack)
    pauses = options.pauses if options.pauses is not None else pause_targets(stack)
    known = known_targets(stack)
    unknown = sorted({*kills, *pauses} - set(known))
    if unknown:
        raise ChaosError(
            f"unknown process {', '.join(unknown)} in the {settings.topology} topology: "
            f"choose from {', '.join(known)}"
        )
    if options.brokers_down and settings.topology != "cluster":
        raise ChaosError(
            "--brokers-down needs the cluster topology's three Kafka nodes: "
            "`saga up --topology cluster`, then `saga chaos --topology cluster --brokers-down 2`"
        )
    if not 0 <= options.brokers_down < len(KAFKA_NODES):
        raise ChaosError(
            f"--brokers-down takes 1 to {len(KAFKA_NODES) - 1} of the {len(KAFKA_NODES)} nodes"
        )
    targets = tuple(
        dict.fromkeys(name for target in (*kills, *pauses) for name in _processes_behind(target))
    ) + (KAFKA_NODES if options.brokers_down else ())
    statuses = {status.name: status for status in stack.status()}
    not_running = [
        name for name in targets
        if statuses.get(name) is None or statuses[name].pid is None
        or statuses[name].state not in ("running", "unhealthy")
    ]  # fmt: skip
    if not_running:
        raise ChaosError(
            "not running processes of this stack: " + ", ".join(sorted(set(not_running)))
            + ". Start the stack with `saga up` (embedded Kafka and Temporal, so that they can be "
            "killed too), or leave them out with --kill/--pause"
        )  # fmt: skip
    _check_restartable(stack, settings, tuple(dict.fromkeys(targets)), kills)
    return kills, pauses


async def _acknowledged_on_kafka(settings: Settings, order_prefix: str) -> int:
    """Events of the orders whose id starts with ``order_prefix`` on Kafka's domain topics,
    each counted once however often it was published."""
    async with SchemaRegistry.from_settings(settings) as schemas:
        found = await read_events(kafka_connection(settings), schemas=schemas)
    return sum(
        len(events)
        for order_id, events in found.by_order().items()
        if order_id.startswith(order_prefix)
    )


async def run_chaos(settings: Settings, options: ChaosOptions, *, say: Say) -> ChaosReport:
    """Run the chaos described by ``options`` against the stack of ``settings``.

    Raises:
        ChaosError: the stack is not up, or a fault's target is not one of its processes.
    """
    if options.orders < 1 or options.concurrency < 1:
        raise ChaosError("--orders and --concurrency must be at least 1")
    if not 0 <= options.returns <= 1:
        raise ChaosError("--returns is a share of the completed orders: from 0 to 1")
    stack = Stack(settings, say=lambda _: None)
    table = ProcessTable(settings.run_dir.resolve())
    kills, pauses = _check_plan(stack, settings, options)
    await wait_for_kafka(kafka_connection(settings), wait_seconds=10)
    temporal = await connect_quietly(settings)

    seed = options.seed if options.seed is not None else random.randrange(2**31)
    rng = random.Random(seed)
    began = datetime.now(UTC)
    run_id = f"{began:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    order_prefix = f"chaos-{run_id}-"
    faults = plan_faults(rng, kills, pauses, options.brokers_down)
    say(
        f"chaos {run_id} (seed {seed}, {settings.topology} topology): {options.orders} orders, "
        f"{options.concurrency} at once, returns for {options.returns:.0%} of those completed; "
        f"faults: {', '.join(map(str, faults))}"
    )
    dead_letters_before = await _dead_letter_ends(kafka_connection(settings))
    metrics = service_metrics(stack, [status.name for status in stack.status()])
    redelivered = _CounterWatch("events_duplicate_total", metrics)
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
        returns=options.returns,
    )
    problems: list[str] = []
    results: list[FaultResult] = []
    async with LagSampler(
        kafka_connection(settings),
        [spec.name for spec in TOPICS],
        interval=1.0,
        failure_level=logging.DEBUG,
        request_timeout_ms=5000,
    ) as lag:
        loading = asyncio.create_task(load.run(), name="chaos-load")
        watching = asyncio.create_task(redelivered.watch(), name="chaos-counters")
        strikes = _Strikes(
            settings, stack, table, options, rng, started, say, load, loading, lag, metrics,
            order_prefix,
        )  # fmt: skip
        try:
            results = await strikes.strike_all(faults)
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
        lag_groups = lag.groups
    duration = time.monotonic() - started
    await redelivered.sample()
    _recovery(results, load.finish_times, started)

    say("waiting for the outboxes to drain")
    pending = await _wait_outboxes_drained(settings, 60)
    say("auditing the run's orders")
    audit = await run_audit(settings, wait_seconds=60, orders=set(load.accepted))

    counts = event_counts(settings, order_prefix=order_prefix, handled_since=wall_start)
    published, consumed = counts.published, counts.handled
    say("looking for every acknowledged event of the run on Kafka")
    on_kafka = await _acknowledged_on_kafka(settings, order_prefix)
    dead_letters = await _dead_letter_ends(kafka_connection(settings)) - dead_letters_before
    say("looking at every return of the run through the API")
    accepted_returns = {r: load.returns_asked[r] for r in load.returns_accepted}
    seen_returns = await check_returns(settings, accepted_returns)
    returns = _return_figures(load, seen_returns, started)

    lost_orders = load.lost_orders()
    struck = {f"{r.kind} {r.target}" for r in results}
    missing = [str(fault) for fault in faults if str(fault) not in struck]
    if lost_orders:
        problems.append(f"{len(lost_orders)} sagas lost (accepted, not ended): {lost_orders[:5]}")
    if returns.lost:
        problems.append(
            f"{returns.lost} return sagas lost (accepted, not ended): {returns.lost_returns[:5]}"
        )
    if returns.unexpected:
        problems.append(
            f"{len(returns.unexpected)} returns not as made: " + "; ".join(returns.unexpected[:5])
        )
    if returns.refused:
        problems.append(f"returns refused by the API: {returns.refused}")
    if dead_letters:
        problems.append(f"{dead_letters} records dead-lettered during the run")
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
    if published > on_kafka:
        problems.append(
            f"{published - on_kafka} events Kafka acknowledged (marked sent) are not on Kafka"
        )
    if results and not lag_groups:
        problems.append("no consumer group's lag could be sampled")
    unsettled = [f"{r.kind} {r.target}" for r in results if r.lag_settled_s is None]
    if unsettled:
        problems.append(
            f"consumer lag not back under {options.lag_limit} within {options.lag_wait_s:g} s "
            f"after: {', '.join(unsettled)}"
        )
    completed, cancelled = load.ended("COMPLETED"), load.ended("CANCELLED")
    return ChaosReport(
        run_id=run_id,
        started_at=began.isoformat(timespec="seconds"),
        topology=settings.topology,
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
        returns=returns,
        faults=results,
        faults_planned=[str(fault) for fault in faults],
        lag_limit=options.lag_limit,
        lag_groups=lag_groups,
        events=EventFigures(
            published=published,
            consumed=consumed,
            dead_letters=dead_letters,
            outbox_pending=pending,
            on_kafka=on_kafka,
            acknowledged_lost=max(published - on_kafka, 0),
        ),
        duplicates=DuplicateFigures(
            order_retries=load.api_retries,
            orders_answered_existing=load.answered_existing,
            return_retries=load.return_retries,
            returns_answered_existing=load.returns_answered_existing,
            events_redelivered=round(redelivered.increase),
        ),
        audit=AuditFigures(
            checked_orders=audit.checked_orders,
            in_flight=len(audit.in_flight),
            violations=[
                {"order_id": v.order_id, "kind": str(v.kind), "detail": v.detail}
                for v in audit.violations
            ],
            counts={str(kind): count for kind, count in audit.counts.items()},
        ),
        passed=not problems,
        problems=problems,
    )


def _return_figures(load: ChaosLoad, seen: dict[str, ReturnSeen], started: float) -> ReturnFigures:
    """The returns' figures: their ends as the clients saw them, checked against the API's
    views (``seen``) and how each was made; times from ``started`` (monotonic)."""
    unexpected = [
        problem
        for return_id, view in sorted(seen.items())
        if (problem := view.problem(load.returns_asked[return_id].expected)) is not None
    ]
    unexpected += [
        f"return {return_id}: the client saw it {ended}"
        for return_id, ended in load.returns_otherwise().items()
    ]
    ends = (ReturnOutcome.COMPLETED, ReturnOutcome.EXPIRED, ReturnOutcome.REJECTED)
    made = Counter(str(r.expected) for r in load.returns_asked.values())
    lost = load.lost_returns()
    took = sorted(end - asked for asked, end in load.return_times.values())
    ended = [end for _, end in load.return_times.values()]
    return ReturnFigures(
        asked=len(load.returns_asked),
        not_asked=load.returns_not_asked,
        accepted=len(load.returns_accepted),
        refused=dict(load.returns_refused),
        completed=load.returns_ended(ReturnOutcome.COMPLETED),
        expired=load.returns_ended(ReturnOutcome.EXPIRED),
        rejected=load.returns_ended(ReturnOutcome.REJECTED),
        other=len(load.return_outcomes) - sum(load.returns_ended(end) for end in ends),
        lost=len(lost),
        lost_returns=lost,
        expected={str(end): made[str(end)] for end in ends},
        unexpected=unexpected,
        events_seen=sum(len(view.events) for view in seen.values()),
        events_expected=sum(
            len(RETURN_EVENTS[load.returns_asked[return_id].expected]) for return_id in seen
        ),
        seconds_p50=round(statistics.median(took), 2) if took else None,
        seconds_max=round(took[-1], 2) if took else None,
        last_order_end_s=round(load.finish_times[-1] - started, 2) if load.finish_times else None,
        last_return_end_s=round(max(ended) - started, 2) if ended else None,
    )


def _figure(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"


def _fault_rows(report: ChaosReport) -> list[str]:
    rows = []
    for f in report.faults:
        struck = ", ".join(f.processes) if f.processes else f.target
        if f.controller is not None:
            struck += f"; controller {f.controller}"
        name = f"{f.kind} {f.target}" + (f" ({struck})" if struck != f.target else "")
        restart = _figure(f.restart_s)
        if f.up_retries:
            restart += f" ({f.up_retries} `saga up` retries)"
        rows.append(
            f"| {name} | {f.at_s:g} | {f.down_s:g} | {restart} | "
            f"{_figure(f.recovered_s)} | {_figure(f.lag_peak)} | {_figure(f.lag_settled_s)} |"
        )
    return rows


def _return_rows(report: ChaosReport) -> list[str]:
    r = report.returns
    if r is None or r.asked + r.not_asked == 0:
        return []
    made = " / ".join(str(r.expected.get(end, 0)) for end in ("COMPLETED", "EXPIRED", "REJECTED"))
    return [
        "| returns | |",
        "|---|---|",
        f"| asked / accepted (orders to return not completed) | {r.asked} / {r.accepted} "
        f"({r.not_asked}) |",
        f"| completed / expired / rejected / otherwise | {r.completed} / {r.expired} / "
        f"{r.rejected} / {r.other} |",
        f"| made to complete / expire / be rejected | {made} |",
        f"| return sagas lost / not as made | {r.lost} / {len(r.unexpected)} |",
        f"| return events seen (GET /returns) / expected | {r.events_seen} / {r.events_expected} |",
        f"| return seconds, median / longest | {_figure(r.seconds_p50)} / "
        f"{_figure(r.seconds_max)} |",
        f"| last order / last return ended at s | {_figure(r.last_order_end_s)} / "
        f"{_figure(r.last_return_end_s)} |",
        "",
    ]


def _return_checks(audit: AuditFigures) -> str:
    """The return checks that ran, with their counts, as the audit line's end."""
    ran = [f"{kind} {audit.counts[kind]}" for kind in _RETURN_CHECKS if kind in audit.counts]
    return f" (return checks: {', '.join(ran)})" if ran else ""


def _outage_lines(report: ChaosReport) -> list[str]:
    return [
        f"{f.kind} ({', '.join(f.processes)}, {f.down_s:g} s): outbox backlog "
        f"{_figure(f.backlog_before)} before, {_figure(f.backlog_peak)} at most while down, "
        f"{_figure(f.backlog_after)} once the lag settled; {_figure(f.publish_errors)} failed "
        f"publishes and {_figure(f.published_during)} events marked sent while down"
        for f in report.faults
        if f.kind is FaultKind.BROKERS_DOWN
    ]


def render_text(report: ChaosReport) -> str:
    """The report as tables for people."""
    o, e, d, a = report.orders, report.events, report.duplicates, report.audit
    outages = _outage_lines(report)
    lines = [
        f"chaos {report.run_id} (seed {report.seed}, {report.topology}): "
        f"{report.duration_s:.0f} s, " + ("PASSED" if report.passed else "FAILED"),
        "",
        "| orders | |",
        "|---|---|",
        f"| placed / accepted | {o.placed} / {o.accepted} |",
        f"| completed / cancelled / failed | {o.completed} / {o.cancelled} / {o.failed} |",
        f"| sagas lost | {o.lost} |",
        f"| sagas/s | {o.sagas_per_s:g} |",
        "",
        *_return_rows(report),
        f"| fault | at s | down s | restart s | recovered s | lag peak | "
        f"lag < {report.lag_limit} after s |",
        "|---|---|---|---|---|---|---|",
        *_fault_rows(report),
        *(["", *outages] if outages else []),
        "",
        "| events and duplicates | |",
        "|---|---|",
        f"| events published / consumed | {e.published} / {e.consumed} |",
        f"| acknowledged events on Kafka / missing | {_figure(e.on_kafka)} / "
        f"{_figure(e.acknowledged_lost)} |",
        f"| dead letters | {e.dead_letters} |",
        f"| orders sent again / answered with the existing saga | "
        f"{d.order_retries} / {d.orders_answered_existing} |",
        *(
            [
                f"| returns sent again / answered with the existing saga | "
                f"{d.return_retries} / {d.returns_answered_existing} |"
            ]
            if report.returns is not None and report.returns.asked
            else []
        ),
        f"| events redelivered, dropped by an inbox | {d.events_redelivered} |",
        "",
        f"audit: {a.checked_orders} orders checked, {a.in_flight} in flight, "
        f"{len(a.violations)} violations" + _return_checks(a),
        *(f"  {v['order_id']}: {v['kind']}: {v['detail']}" for v in a.violations),
        *(f"problem: {problem}" for problem in report.problems),
    ]
    return "\n".join(lines)
