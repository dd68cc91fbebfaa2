"""``saga bench``: the running stack measured against Temporal's and Kafka's own ceilings.

In order, each part alone so that none disturbs another:

1. the order sagas through the API, with the bench's consumer on the domain topics, the
   consumer-lag sampler and two scrapes of the services' ``/metrics`` around them;
2. the bare workflow of the saga's shape on the same Temporal, with the bench's own workers;
3. publishing to a bench topic: Kafka's ``ProducerPerformance``, aiokafka alone, and the
   project's outbox relay.
"""

import asyncio
import os
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

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
from infra.engines.stack import CLUSTER_COPIES
from ops.bench.breakdown import TimeBreakdown, sample_breakdown, sample_indexes
from ops.bench.cpu import CpuUse, cpu_use, take_snapshot
from ops.bench.kafka_tools import ensure_kafka_tools_jars, run_producer_performance
from ops.bench.load import (
    BENCH_SKUS,
    LoadFigures,
    ProgressLine,
    Say,
    bare_workflow_id,
    bench_order,
    run_bare_sagas,
    run_orders,
)
from ops.bench.observe import (
    DeliveryFigures,
    DeliveryProbe,
    LagFigures,
    LagSampler,
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
    PublishingSection,
    SagaSection,
    evaluate_targets,
    ratios_of,
    write_reports,
)
from runtime import BookUnreadable, wait_for_kafka, wait_for_temporal
from workers.inventory import queries as inventory_queries

__all__ = ["BenchError", "BenchOptions", "BenchRun", "run_bench"]


EVENTS_PER_COMPLETED_SAGA = 6
"""order.placed, payment.completed, inventory.reserved, shipping.scheduled,
shipping.dispatched, order.completed."""

_SERVICES = ("payment", "inventory", "shipping", "orchestrator")


class BenchError(Exception):
    """The bench cannot run as asked; the message says what to do."""


RELAY_COMPARISON_RECORDS = 20_000
"""Events each way of sharing a PostgreSQL outbox publishes (one transaction each to write)."""


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


def _stock_warning(settings: Settings, orders: int) -> str | None:
    """A warning when the bench would order more units of a SKU than inventory has."""
    stock = _stock_on_hand(settings)
    if stock is None:
        return None
    on_hand, where = stock
    needed = Counter(BENCH_SKUS[index % len(BENCH_SKUS)] for index in range(orders))
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
        DeliveryProbe(
            bootstrap, topics, group_id=f"saga-bench-{run_id}", key_prefix=f"bench-{run_id}-"
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
        project = await measure_project_publisher(
            bootstrap, topic, records=options.records, log_level=settings.log_level, say=say
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
    stock = _stock_warning(settings, options.orders)
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

    urls = {
        name: f"http://{settings.api_host}:{settings.service_port(name)}/metrics"
        for name in _SERVICES
    }
    before = await scrape_metrics(urls)
    saga_phase = await _run_sagas(settings, temporal, options, run_id, profilers, pids, say)
    publish = publish_latency(before, await scrape_metrics(urls))
    if publish.unavailable:
        warnings.append("no event_publish_latency_seconds from " + ", ".join(publish.unavailable))
    if saga_phase.load.failed:
        warnings.append(
            f"{saga_phase.load.failed} order(s) did not finish: {saga_phase.load.errors}"
        )
    expected_events = saga_phase.load.completed * EVENTS_PER_COMPLETED_SAGA
    if saga_phase.delivery.events < expected_events:
        warnings.append(
            f"the bench's consumer received {saga_phase.delivery.events} of the "
            f"{expected_events} events of the completed sagas"
        )
    sagas = SagaSection(
        load=saga_phase.load,
        carrier_dispatch_delay_s=settings.carrier_dispatch_delay_seconds,
        publish=publish,
        delivery=saga_phase.delivery,
        lag=saga_phase.lag,
        cpu=saga_phase.cpu,
        breakdown=saga_phase.breakdown,
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
        {"the orders": sagas.cpu, "the bare workflows": bare.cpu if bare else None}
    )
    ratios = ratios_of(sagas, bare, publishing)
    storage = "postgresql" if settings.topology == "cluster" else settings.temporal_storage
    report = BenchReport(
        environment=Environment(
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
        bare=bare,
        publishing=publishing,
        ratios=ratios,
        targets=evaluate_targets(sagas, bare, publishing, ratios, temporal_storage=storage),
        profiles=saga_phase.profiles,
        warnings=warnings,
    )
    json_path, markdown_path = write_reports(report, report_dir)
    return BenchRun(report, json_path, markdown_path)
