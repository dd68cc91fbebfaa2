"""``saga bench``: the running stack measured against Temporal's and Kafka's own ceilings.

In order, each part alone so that none disturbs another:

1. the order sagas through the API, with the bench's consumer on the domain topics, the
   consumer-lag sampler and two scrapes of the services' ``/metrics`` around them;
   closed loop, at their ceiling (saturation);
   then, with ``--rate``, orders at a fixed rate (open loop), with the same instruments of
   their own; the resident size of every process of the stack is sampled through both;
2. the bare workflow of the saga's shape on the same Temporal, with the bench's own workers;
3. publishing to a bench topic: Kafka's ``ProducerPerformance``, aiokafka alone, and the
   project's outbox relay.
"""

import asyncio
import math
import os
import uuid
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from temporalio.client import Client

from contracts.activities import saga_workflow_id
from contracts.codec import encode_event
from contracts.topics import TOPICS
from infra.config.databases import database_url
from infra.config.kafka import kafka_connection
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings, api_headers
from infra.config.temporal import temporal_connection
from infra.engines.stack import CLUSTER_COPIES, split_instance
from ops.bench.breakdown import TimeBreakdown, sample_breakdown, sample_indexes
from ops.bench.cpu import CpuUse, cpu_use, take_snapshot
from ops.bench.kafka_tools import ensure_kafka_tools_jars, run_producer_performance
from ops.bench.load import (
    BENCH_SKUS,
    LoadFigures,
    PacingFigures,
    ProgressLine,
    Say,
    bare_workflow_id,
    bench_order,
    in_flight_cap,
    run_bare_sagas,
    run_orders,
    run_paced_orders,
)
from ops.bench.memory import RssPeaks, RssSampler
from ops.bench.observe import (
    DeliveryFigures,
    DeliveryProbe,
    LagFigures,
    LagSampler,
    PublishFigures,
    publish_latency,
    scrape_metrics,
)
from ops.bench.profiling import ProcessProfile, Profilers, find_py_spy
from ops.bench.publisher import (
    bench_topic,
    java_producer_props,
    measure_aiokafka_producer,
    measure_project_publisher,
    measure_relay_modes,
    typical_event,
)
from ops.bench.report import (
    BareSection,
    BenchReport,
    Environment,
    PacedSection,
    PublishingSection,
    SagaSection,
    judged_report,
    write_reports,
)
from runtime import BookUnreadable, SchemaRegistry, wait_for_kafka, wait_for_temporal
from workers.inventory import queries as inventory_queries

__all__ = [
    "AUTO_RATE_SHARE",
    "BenchError",
    "BenchOptions",
    "BenchRun",
    "paced_plan",
    "run_bench",
]


EVENTS_PER_COMPLETED_SAGA = 6
"""order.placed, payment.completed, inventory.reserved, shipping.scheduled,
shipping.dispatched, order.completed."""

_SERVICES = ("payment", "inventory", "shipping", "orchestrator")


def _metrics_urls(settings: Settings, pids: Mapping[str, int]) -> dict[str, str]:
    """The ``/metrics`` of every copy of every service the stack recorded (the first copies
    when it recorded none), whose publish latency histograms the bench adds up."""
    copies = [split_instance(name) for name in pids]
    chosen = [(s, n) for s, n in copies if s in _SERVICES] or [(s, 1) for s in _SERVICES]
    return {
        (service if copy == 1 else f"{service}-{copy}"): (
            f"http://{settings.api_host}:{settings.service_port(service, copy)}/metrics"
        )
        for service, copy in chosen
    }


class BenchError(Exception):
    """The bench cannot run as asked; the message says what to do."""


RELAY_COMPARISON_RECORDS = 20_000
"""Events each way of sharing a PostgreSQL outbox publishes (one transaction each to write)."""

AUTO_RATE_SHARE = 0.7
"""``--rate auto``: this share of the saturation's sagas/s (issue 15's paced load)."""
PACED_SECONDS = 30.0
"""Without ``--paced-orders``, the paced phase places this many seconds' worth of orders."""
RSS_SAMPLE_SECONDS = 1.0
"""How often the resident size of the stack's processes is read during the orders."""


@dataclass(frozen=True)
class BenchOptions:
    """What to run, and how much of it."""

    orders: int = 200
    concurrency: int = 50
    bare_orders: int | None = None
    """Bare sagas to run (default: as many as orders)."""
    bare_dispatch_wait: float | None = None
    """The bare saga's stand-in for the carrier (default: the stack's dispatch delay)."""
    records: int = 100_000
    rate: float | Literal["auto"] | None = None
    """Orders a second of the paced phase; ``auto``: ``AUTO_RATE_SHARE`` of the saturation's
    sagas/s; None: no paced phase."""
    paced_orders: int | None = None
    """Orders of the paced phase (default: ``PACED_SECONDS`` worth at the rate)."""
    skip_bare: bool = False
    skip_publishing: bool = False
    skip_kafka_tools: bool = False
    profile: bool = False
    report_dir: Path | None = None

    def command_line(self) -> str:
        """The ``saga bench`` command that asks for these options."""
        words = ["saga bench", f"--orders {self.orders}", f"--concurrency {self.concurrency}"]
        if self.bare_orders is not None:
            words.append(f"--bare-orders {self.bare_orders}")
        if self.bare_dispatch_wait is not None:
            words.append(f"--bare-dispatch-wait {self.bare_dispatch_wait:g}")
        if self.rate is not None:
            words.append(f"--rate {self.rate if self.rate == 'auto' else f'{self.rate:g}'}")
        if self.paced_orders is not None:
            words.append(f"--paced-orders {self.paced_orders}")
        if not self.skip_publishing:
            words.append(f"--records {self.records}")
        flags = {
            "--skip-bare": self.skip_bare,
            "--skip-publishing": self.skip_publishing,
            "--skip-kafka-tools": self.skip_kafka_tools and not self.skip_publishing,
            "--profile": self.profile,
        }
        return " ".join(words + [flag for flag, on in flags.items() if on])


def _stock_on_hand(settings: Settings) -> tuple[dict[str, int], str] | None:
    """Units of the bench's SKUs on hand (read-only, through inventory's queries), or seeded."""
    database = inventory_queries.database_path(settings.run_dir)
    if database.exists():
        try:
            with inventory_queries.InventoryQueries.open(database) as stock:
                return stock.on_hand(BENCH_SKUS), f"on hand in {database}"
        except BookUnreadable:
            pass  # not readable now: the seed file says what it started with
    seed_file = inventory_queries.seed_file(settings.inventory_seed_file)
    try:
        return inventory_queries.seeded_levels(seed_file), f"seeded by {seed_file}"
    except (OSError, ValueError):
        return None


def _stock_warning(settings: Settings, *phases: int) -> str | None:
    """A warning when the bench's phases of that many orders each would order more units of
    a SKU than inventory has."""
    stock = _stock_on_hand(settings)
    if stock is None:
        return None
    on_hand, where = stock
    orders = sum(phases)
    needed = Counter(
        BENCH_SKUS[index % len(BENCH_SKUS)] for count in phases for index in range(count)
    )
    short = {sku: units for sku, units in needed.items() if on_hand.get(sku, 0) < units}
    if not short:
        return None
    return (
        f"{orders} orders take "
        + ", ".join(
            f"{units} units of {sku} ({on_hand.get(sku, 0)} {where})"
            for sku, units in short.items()
        )
        + ": the orders beyond the stock are cancelled (stock unavailable). Stock the stack "
        "with SAGA_INVENTORY_SEED_FILE (in a fresh run directory) to bench more orders."
    )


async def _check_api(api_url: str) -> None:
    async with httpx.AsyncClient(timeout=5.0) as http:
        try:
            response = await http.get(f"{api_url}/healthz")
        except httpx.HTTPError as exc:
            raise BenchError(
                f"the API at {api_url} does not answer ({type(exc).__name__}): "
                "is the stack up? (`saga ps`, `saga up`)"
            ) from None
    if response.status_code != 200:
        raise BenchError(f"the API at {api_url} is not healthy (HTTP {response.status_code})")


def _stack_pids(settings: Settings) -> dict[str, int]:
    """The process ids of the stack's components that ``saga up`` recorded in the run dir."""
    from infra.engines.stack import Stack

    return {
        status.name: status.pid
        for status in Stack(settings, say=lambda _: None).status()
        if status.pid is not None
    }


@dataclass
class _SagaPhase:
    load: LoadFigures
    delivery: DeliveryFigures
    lag: LagFigures
    cpu: CpuUse
    breakdown: TimeBreakdown | None
    profiles: list[ProcessProfile]


async def _run_sagas(
    settings: Settings,
    temporal: Client,
    options: BenchOptions,
    run_id: str,
    profilers: Profilers | None,
    pids: dict[str, int],
    say: Say,
) -> _SagaPhase:
    topics = [spec.name for spec in TOPICS]
    bootstrap = kafka_connection(settings)
    async with (
        SchemaRegistry.from_settings(settings) as schemas,
        DeliveryProbe(
            bootstrap,
            topics,
            group_id=f"saga-bench-{run_id}",
            key_prefix=f"bench-{run_id}-",
            schemas=schemas,
        ) as probe,
        LagSampler(bootstrap, topics) as lag,
    ):
        if profilers is not None:
            profilers.start()
        say(f"orders: {options.orders} through {settings.api_url}, {options.concurrency} at once")
        cpu_before = take_snapshot(pids)
        try:
            load = await run_orders(
                settings.api_url,
                temporal,
                run_id=run_id,
                count=options.orders,
                concurrency=options.concurrency,
                progress=ProgressLine("orders", say),
                headers=api_headers(settings),
            )
            cpu = cpu_use(cpu_before, take_snapshot(pids))
        finally:
            profiles = profilers.stop() if profilers is not None else []
        # The last events are published after their saga ended: let them arrive.
        expected = load.completed * EVENTS_PER_COMPLETED_SAGA
        await probe.wait_for(expected, seconds=30)
        await asyncio.sleep(0.5)  # and those of cancelled sagas, whose count is not known
        await lag.sample()
        breakdown = await sample_breakdown(
            temporal,
            (
                saga_workflow_id(bench_order(run_id, index).order_id or "")
                for index in sample_indexes(options.orders)
            ),
        )
        return _SagaPhase(load, probe.figures(), lag.figures(), cpu, breakdown, profiles)


@dataclass(frozen=True)
class PacedPlan:
    """What the paced phase will do."""

    rate: float
    """Orders a second."""
    source: str
    """How the rate was chosen, for the report."""
    orders: int


def paced_plan(options: BenchOptions, saturation_sagas_per_s: float) -> PacedPlan | None:
    """The paced phase that ``options`` ask for after a saturation of that many sagas/s.

    None without ``--rate``, or when ``--rate auto`` has no rate to take its share of (no
    saga finished at saturation).
    """
    if options.rate is None:
        return None
    if options.rate == "auto":
        rate = round(AUTO_RATE_SHARE * saturation_sagas_per_s, 2)
        source = (
            f"auto: {AUTO_RATE_SHARE:.0%} of the saturation's {saturation_sagas_per_s:g} sagas/s"
        )
    else:
        rate, source = options.rate, f"--rate {options.rate:g}"
    if rate <= 0:
        return None
    orders = options.paced_orders or math.ceil(rate * PACED_SECONDS)
    return PacedPlan(rate=rate, source=source, orders=orders)


@dataclass
class _PacedPhase:
    load: LoadFigures
    pacing: PacingFigures
    publish: PublishFigures
    delivery: DeliveryFigures
    lag: LagFigures
    cpu: CpuUse


async def _run_paced(
    settings: Settings,
    temporal: Client,
    plan: PacedPlan,
    options: BenchOptions,
    run_id: str,
    pids: dict[str, int],
    metrics: tuple[dict[str, str], dict[str, str | None]],
    say: Say,
) -> _PacedPhase:
    """The paced orders; ``metrics``: the services' ``/metrics`` URLs and their scrape from
    before the phase."""
    topics = [spec.name for spec in TOPICS]
    bootstrap = kafka_connection(settings)
    paced_id = _paced_run_id(run_id)
    cap = in_flight_cap(plan.rate, options.concurrency)
    async with (
        SchemaRegistry.from_settings(settings) as schemas,
        DeliveryProbe(
            bootstrap,
            topics,
            group_id=f"saga-bench-{paced_id}",
            key_prefix=f"bench-{paced_id}-",
            schemas=schemas,
        ) as probe,
        LagSampler(bootstrap, topics) as lag,
    ):
        say(
            f"paced: {plan.orders} orders at {plan.rate:g}/s ({plan.source}), at most {cap} at once"
        )
        cpu_before = take_snapshot(pids)
        load, pacing = await run_paced_orders(
            settings.api_url,
            temporal,
            run_id=paced_id,
            count=plan.orders,
            rate=plan.rate,
            cap=cap,
            progress=ProgressLine("paced", say),
            headers=api_headers(settings),
        )
        cpu = cpu_use(cpu_before, take_snapshot(pids))
        await probe.wait_for(load.completed * EVENTS_PER_COMPLETED_SAGA, seconds=30)
        await asyncio.sleep(0.5)  # and those of cancelled sagas, whose count is not known
        await lag.sample()
        urls, before = metrics
        publish = publish_latency(before, await scrape_metrics(urls))
        return _PacedPhase(load, pacing, publish, probe.figures(), lag.figures(), cpu)


def _paced_run_id(run_id: str) -> str:
    """The run id of the paced orders: their order ids (the events' keys) are their own."""
    return f"{run_id}-paced"


async def _run_publishing(
    settings: Settings, options: BenchOptions, run_id: str, tools: Path | None, say: Say
) -> PublishingSection:
    bootstrap = kafka_connection(settings)
    record_bytes = len(encode_event(typical_event()).value)
    async with bench_topic(bootstrap, f"saga-bench-{run_id}") as topic:
        say(f"publishing: {options.records:,} records of {record_bytes} bytes to {topic}")
        kafka_tool = None
        if tools is not None:
            kafka_tool = await run_producer_performance(
                java=settings.java,
                libs=tools,
                topic=topic,
                records=options.records,
                record_bytes=record_bytes,
                producer_props=java_producer_props(bootstrap),
                say=say,
            )
        aiokafka = await measure_aiokafka_producer(
            bootstrap, topic, records=options.records, say=say
        )
        async with SchemaRegistry.from_settings(settings) as schemas:
            project = await measure_project_publisher(
                bootstrap,
                topic,
                records=options.records,
                log_level=settings.log_level,
                say=say,
                schemas=schemas,
            )
        relays = []
        url = database_url(settings, "orchestrator")
        if url is not None:
            relays = await measure_relay_modes(
                settings,
                url,
                topic,
                records=min(options.records, RELAY_COMPARISON_RECORDS),
                relays=CLUSTER_COPIES,
                say=say,
            )
    return PublishingSection(
        topic=topic,
        records=options.records,
        record_bytes=record_bytes,
        acks="all",
        kafka_tool=kafka_tool,
        aiokafka=aiokafka,
        project=project,
        relays=relays,
    )


def _phase_warnings(phase: str, load: LoadFigures, delivery: DeliveryFigures) -> list[str]:
    """Sagas of a phase that did not finish, and events of it the bench did not receive."""
    warnings = []
    if load.failed:
        warnings.append(f"{load.failed} of {phase} did not finish: {load.errors}")
    expected = load.completed * EVENTS_PER_COMPLETED_SAGA
    if delivery.events < expected:
        warnings.append(
            f"the bench's consumer received {delivery.events} of the {expected} events of "
            f"{phase}' completed sagas"
        )
    return warnings


def _contention(phases: dict[str, CpuUse | None], threshold: float = 0.1) -> list[str]:
    """A warning for each phase during which processes not of the stack took much CPU."""
    warnings = []
    for phase, cpu in phases.items():
        if cpu is None or cpu.others_seconds is None or not cpu.cpus or not cpu.wall_s:
            continue
        share = cpu.others_seconds / (cpu.wall_s * cpu.cpus)
        if share > threshold:
            warnings.append(
                f"other processes took {share:.0%} of the machine's CPU during {phase}: "
                "the figures and the ratios are skewed; run again on a quiet machine"
            )
    return warnings


async def _order_phases(
    settings: Settings,
    temporal: Client,
    options: BenchOptions,
    run_id: str,
    profilers: Profilers | None,
    pids: dict[str, int],
    warnings: list[str],
    say: Say,
) -> tuple[SagaSection, PacedSection | None, RssPeaks, list[ProcessProfile]]:
    """The orders at saturation, then (``--rate``) paced, with every process's resident size
    sampled through both; what went wrong is added to ``warnings``."""
    urls = _metrics_urls(settings, pids)
    paced = None
    async with RssSampler(pids, interval=RSS_SAMPLE_SECONDS) as rss:
        before = await scrape_metrics(urls)
        saturation = await _run_sagas(settings, temporal, options, run_id, profilers, pids, say)
        between = await scrape_metrics(urls)
        plan = paced_plan(options, saturation.load.sagas_per_s)
        if options.rate is not None and plan is None:
            warnings.append("--rate auto: no saga finished at saturation, so no paced phase")
        if plan is not None:
            if options.rate == "auto":  # its orders are known only now
                stock = _stock_warning(settings, plan.orders)
                if stock is not None:
                    warnings.append(stock)
                    say(f"warning: {stock}")
            paced = await _run_paced(
                settings, temporal, plan, options, run_id, pids, (urls, between), say
            )

    publish = publish_latency(before, between)
    if publish.unavailable:
        warnings.append("no event_publish_latency_seconds from " + ", ".join(publish.unavailable))
    warnings += _phase_warnings("the orders", saturation.load, saturation.delivery)
    sagas = SagaSection(
        load=saturation.load,
        carrier_dispatch_delay_s=settings.carrier_dispatch_delay_seconds,
        publish=publish,
        delivery=saturation.delivery,
        lag=saturation.lag,
        cpu=saturation.cpu,
        breakdown=saturation.breakdown,
    )
    if paced is None or plan is None:
        return sagas, None, rss.peaks(), saturation.profiles

    warnings += _phase_warnings("the paced orders", paced.load, paced.delivery)
    if paced.pacing.cap_waits:
        warnings.append(
            f"the paced orders reached the cap of {paced.pacing.in_flight_cap} in flight "
            f"{paced.pacing.cap_waits} time(s): the stack did not keep up with "
            f"{plan.rate:g}/s, and those orders started late"
        )
    section = PacedSection(
        rate_source=plan.source,
        load=paced.load,
        pacing=paced.pacing,
        publish=paced.publish,
        delivery=paced.delivery,
        lag=paced.lag,
        cpu=paced.cpu,
    )
    return sagas, section, rss.peaks(), saturation.profiles


@dataclass(frozen=True)
class BenchRun:
    """A finished run: its report and where it was written."""

    report: BenchReport
    json_path: Path
    markdown_path: Path


async def run_bench(settings: Settings, options: BenchOptions, *, say: Say) -> BenchRun:
    """Run the bench on the stack ``settings`` point at; write and return its report.

    Raises:
        BenchError: the stack is not up, or an option cannot be used.
        KafkaUnavailableError: Kafka does not answer.
        TemporalUnavailableError: Temporal does not answer.
        MissingToolError: Java or Maven is needed for Kafka's tool and missing.
    """
    if options.orders < 1 or options.concurrency < 1 or options.records < 1:
        raise BenchError("--orders, --concurrency and --records must be at least 1")
    rate = options.rate
    if rate is not None and rate != "auto" and not 0 < rate < math.inf:
        raise BenchError("--rate must be a positive number of orders a second, or auto")
    if options.paced_orders is not None and (options.paced_orders < 1 or options.rate is None):
        raise BenchError("--paced-orders must be at least 1, and goes with --rate")
    started = datetime.now(UTC)
    run_id = f"{started:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:4]}"
    warnings: list[str] = []

    await wait_for_kafka(kafka_connection(settings), wait_seconds=10)
    temporal = await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=10,
        data_converter=data_converter(settings),
    )
    await _check_api(settings.api_url)
    known_plan = paced_plan(options, 0.0)  # --rate N: its orders are known now
    stock = _stock_warning(settings, options.orders, known_plan.orders if known_plan else 0)
    if stock is not None:
        warnings.append(stock)
        say(f"warning: {stock}")

    tools = None
    if not options.skip_publishing and not options.skip_kafka_tools:
        tools = ensure_kafka_tools_jars(
            settings.kafka_cache_dir, settings.kafka_version, maven=settings.maven, say=say
        )

    profilers = None
    report_dir = options.report_dir or settings.run_dir / "bench"
    pids = {**_stack_pids(settings), "bench": os.getpid()}
    if len(pids) == 1:
        warnings.append(
            f"no process of the stack is recorded in {settings.run_dir}: CPU use is the bench's "
            "own (run the bench with the settings `saga up` was given)"
        )
    if options.profile:
        py_spy = find_py_spy()
        python_pids = {name: pid for name, pid in pids.items() if name in (*_SERVICES, "api")}
        if py_spy is None:
            warnings.append("--profile: py-spy is not installed (pip install py-spy)")
        elif not python_pids:
            warnings.append(f"--profile: no process of the stack is recorded in {settings.run_dir}")
        else:
            profilers = Profilers(py_spy, python_pids, report_dir / f"profile-{run_id}")

    sagas, paced, memory, profiles = await _order_phases(
        settings, temporal, options, run_id, profilers, pids, warnings, say
    )

    bare = None
    if not options.skip_bare:
        wait = (
            options.bare_dispatch_wait
            if options.bare_dispatch_wait is not None
            else settings.carrier_dispatch_delay_seconds
        )
        count = options.bare_orders or options.orders
        say(f"bare workflow: {count} on {settings.temporal_address}, {options.concurrency} at once")
        cpu_before = take_snapshot(pids)
        bare_load = await run_bare_sagas(
            temporal,
            run_id=run_id,
            count=count,
            concurrency=options.concurrency,
            dispatch_wait_seconds=wait,
            progress=ProgressLine("bare", say),
        )
        bare_cpu = cpu_use(cpu_before, take_snapshot(pids))
        bare = BareSection(
            load=bare_load,
            cpu=bare_cpu,
            breakdown=await sample_breakdown(
                temporal, (bare_workflow_id(run_id, index) for index in sample_indexes(count))
            ),
            dispatch_wait_s=wait,
            shape=(
                "5 no-op activities in sequence on 4 task queues (orchestrator, payment, "
                f"inventory, shipping, orchestrator), a {wait:g} s timer for the carrier before "
                "the last; workers in the bench's process"
            ),
        )

    publishing = None
    if not options.skip_publishing:
        publishing = await _run_publishing(settings, options, run_id, tools, say)

    warnings += _contention(
        {
            "the orders": sagas.cpu,
            "the paced orders": paced.cpu if paced else None,
            "the bare workflows": bare.cpu if bare else None,
        }
    )
    storage = "postgresql" if settings.topology == "cluster" else settings.temporal_storage
    report = judged_report(
        Environment(
            run_id=run_id,
            started_at=started.isoformat(timespec="seconds"),
            api_url=settings.api_url,
            temporal_address=settings.temporal_address,
            temporal_storage=storage,
            kafka_bootstrap_servers=settings.kafka_brokers,
            kafka_version=settings.kafka_version,
            cpus=os.cpu_count(),
            command=options.command_line(),
        ),
        sagas=sagas,
        paced=paced,
        bare=bare,
        publishing=publishing,
        memory=memory,
        profiles=profiles,
        warnings=warnings,
    )
    json_path, markdown_path = write_reports(report, report_dir)
    return BenchRun(report, json_path, markdown_path)
