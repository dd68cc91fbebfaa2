"""The bench's report: its figures, the targets met or missed, and their text renderings."""

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from infra.engines.stack import ENGINES, split_instance
from ops.bench.breakdown import BREAKDOWN_PARTS, TimeBreakdown
from ops.bench.cpu import CpuUse
from ops.bench.load import LoadFigures, PacingFigures
from ops.bench.memory import RssPeaks
from ops.bench.observe import DeliveryFigures, LagFigures, PublishFigures
from ops.bench.profiling import ProcessProfile
from ops.bench.publisher import PublisherFigures
from ops.bench.stats import LatencySummary

__all__ = [
    "BareSection",
    "BenchReport",
    "Environment",
    "PacedSection",
    "PublishingSection",
    "Ratios",
    "SagaSection",
    "Target",
    "evaluate_targets",
    "render_markdown",
    "render_text",
    "write_reports",
]


class Environment(BaseModel):
    """Where and when the bench ran."""

    run_id: str
    started_at: str
    api_url: str
    temporal_address: str
    temporal_storage: str
    kafka_bootstrap_servers: str
    kafka_version: str
    cpus: int | None
    command: str


class SagaSection(BaseModel):
    """The order sagas through the API, and what the bench saw of their events."""

    load: LoadFigures
    carrier_dispatch_delay_s: float
    publish: PublishFigures | None
    delivery: DeliveryFigures | None
    lag: LagFigures | None
    cpu: CpuUse | None = None
    breakdown: TimeBreakdown | None = None


class PacedSection(BaseModel):
    """The order sagas started at a fixed rate (open loop), and their events."""

    rate_source: str
    """``--rate N``, or how ``--rate auto`` chose the rate."""
    load: LoadFigures
    """Its ``concurrency`` is the in-flight cap."""
    pacing: PacingFigures
    publish: PublishFigures | None
    delivery: DeliveryFigures | None
    """The paced orders' events only."""
    lag: LagFigures | None
    cpu: CpuUse | None = None


class BareSection(BaseModel):
    """The bare ceiling: the saga's shape with no-op activities, on the same Temporal."""

    load: LoadFigures
    dispatch_wait_s: float
    shape: str
    cpu: CpuUse | None = None
    breakdown: TimeBreakdown | None = None


class PublishingSection(BaseModel):
    """Kafka's ceiling beside aiokafka alone and the project's publisher."""

    topic: str
    records: int
    record_bytes: int
    acks: str
    kafka_tool: PublisherFigures | None
    aiokafka: PublisherFigures | None
    project: PublisherFigures | None
    relays: list[PublisherFigures] = []
    """The outbox relay on PostgreSQL (cluster topology): one lease holder, then claims."""


class Ratios(BaseModel):
    """Each figure against its ceiling (None where either side was not measured)."""

    saga_vs_bare_throughput: float | None
    saga_vs_bare_latency_p95: float | None
    project_vs_kafka_tool_throughput: float | None
    project_vs_aiokafka_throughput: float | None
    aiokafka_vs_kafka_tool_throughput: float | None


class Target(BaseModel):
    """One target of issue 15 (the event latencies are design document 002's)."""

    name: str
    goal: str
    measured: str
    met: bool | None
    """None: not measured in this run."""
    limited_by: str | None = None


class BenchReport(BaseModel):
    """Everything one ``saga bench`` run measured."""

    environment: Environment
    sagas: SagaSection
    paced: PacedSection | None = None
    """``--rate``: the orders at a fixed rate, after the saturation's."""
    bare: BareSection | None
    publishing: PublishingSection | None
    ratios: Ratios
    memory: RssPeaks | None = None
    """Each process's peak resident size while the orders (both phases) ran."""
    targets: list[Target]
    profiles: list[ProcessProfile] = []
    """py-spy's view of each process during the orders (``--profile``)."""
    warnings: list[str]


def judged_report(
    environment: Environment,
    *,
    sagas: SagaSection,
    paced: PacedSection | None,
    bare: BareSection | None,
    publishing: PublishingSection | None,
    memory: RssPeaks | None,
    profiles: list[ProcessProfile],
    warnings: list[str],
) -> BenchReport:
    """A run's report, its ratios and targets derived from its sections."""
    ratios = ratios_of(sagas, bare, publishing)
    targets = evaluate_targets(
        sagas,
        bare,
        publishing,
        ratios,
        temporal_storage=environment.temporal_storage,
        paced=paced,
        memory=memory,
    )
    return BenchReport(
        environment=environment,
        sagas=sagas,
        paced=paced,
        bare=bare,
        publishing=publishing,
        ratios=ratios,
        memory=memory,
        targets=targets,
        profiles=profiles,
        warnings=warnings,
    )


def _ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def _p95(summary: LatencySummary | None) -> float | None:
    return summary.p95_ms if summary is not None else None


def ratios_of(
    sagas: SagaSection, bare: BareSection | None, publishing: PublishingSection | None
) -> Ratios:
    """The saga against the bare workflow, the project's publisher against Kafka's tool."""

    def rate(figures: PublisherFigures | None) -> float | None:
        return figures.records_per_s if figures is not None else None

    return Ratios(
        saga_vs_bare_throughput=_ratio(
            sagas.load.sagas_per_s, bare.load.sagas_per_s if bare else None
        ),
        saga_vs_bare_latency_p95=_ratio(
            _p95(sagas.load.latency), _p95(bare.load.latency) if bare else None
        ),
        project_vs_kafka_tool_throughput=_ratio(
            rate(publishing.project if publishing else None),
            rate(publishing.kafka_tool if publishing else None),
        ),
        project_vs_aiokafka_throughput=_ratio(
            rate(publishing.project if publishing else None),
            rate(publishing.aiokafka if publishing else None),
        ),
        aiokafka_vs_kafka_tool_throughput=_ratio(
            rate(publishing.aiokafka if publishing else None),
            rate(publishing.kafka_tool if publishing else None),
        ),
    )


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.1f} ms"


def _busy(cpu: CpuUse | None) -> str:
    if cpu is None or cpu.machine_busy_share is None:
        return ""
    others = (
        f", {cpu.others_seconds:,.0f} CPU s of it not the stack's" if cpu.others_seconds else ""
    )
    return f"machine {cpu.machine_busy_share:.0%} busy on {cpu.cpus} CPUs{others}"


def _cpu_per_saga(cpu: CpuUse | None, sagas: int, *, exclude: tuple[str, ...] = ()) -> float | None:
    if cpu is None or not sagas:
        return None
    seconds = sum(v for name, v in cpu.process_seconds.items() if name not in exclude)
    return seconds / sagas * 1000


def _saga_cost(sagas: SagaSection, bare: BareSection, temporal_storage: str) -> str:
    """What the saga costs beyond the bare shape, on the same Temporal and the same CPUs."""
    parts: list[str] = []
    saga_cpu = _cpu_per_saga(sagas.cpu, sagas.load.finished, exclude=("bench",))
    bare_cpu = _cpu_per_saga(bare.cpu, bare.load.finished)
    if saga_cpu is not None and bare_cpu is not None and sagas.cpu and bare.cpu:
        per_saga = {
            name: seconds / sagas.load.finished * 1000
            for name, seconds in sagas.cpu.process_seconds.items()
            if name not in ("bench", "others")
        }
        temporal = per_saga.pop("temporal", 0.0)
        bare_temporal = bare.cpu.process_seconds.get("temporal", 0.0) / bare.load.finished * 1000
        rest = ", ".join(
            f"{name} {ms:,.0f}" for name, ms in sorted(per_saga.items(), key=lambda i: -i[1])
        )
        parts.append(
            f"CPU per saga {saga_cpu:,.0f} ms vs {bare_cpu:,.0f} ms on the same cores: Temporal "
            f"{temporal:,.0f} vs {bare_temporal:,.0f} ms; beyond Temporal the saga's services, "
            f"events and consumers ({rest} ms), where the bare workflow has no-op activities "
            "in the bench's own process"
        )
    saga_bd, bare_bd = sagas.breakdown, bare.breakdown
    if saga_bd is not None and bare_bd is not None:
        if saga_bd.events_per_history > bare_bd.events_per_history + 5:
            storage = {
                "file": "Temporal's dev server stores every history event in SQLite "
                "(SAGA_TEMPORAL_STORAGE=file, write-ahead log)",
                "postgresql": "Temporal's full server stores every history event and "
                "visibility record in PostgreSQL, on the same two cores",
            }.get(temporal_storage, "Temporal handles every history event")
            parts.append(f"{storage}: the saga's extra history events cost on both cores")
        queued = "workflow tasks queued (scheduled → started)"
        parts.append(
            f"per saga {saga_bd.events_per_history:g} history events "
            f"({saga_bd.search_attribute_upserts:g} search-attribute upserts) vs "
            f"{bare_bd.events_per_history:g}, workflow tasks queued "
            f"{saga_bd.mean_ms[queued]:,.0f} ms vs {bare_bd.mean_ms[queued]:,.0f} ms"
        )
    parts.append(_busy(sagas.cpu))
    return "; ".join(part for part in parts if part)


RSS_LIMIT_MB = 150.0
"""The memory target: every process of the project under this many MB resident."""
RSS_EXEMPT: tuple[str, ...] = (*ENGINES, "bench")
"""What the memory target leaves out: the engines, whose memory is theirs to size (Temporal's
server, as the issue says; Kafka's JVM, whose heap ``SAGA_KAFKA_HEAP`` reserves whole, 512 MB
by default; PostgreSQL), and the bench's own process."""


def _temporal_ms(cpu: CpuUse | None, sagas: int) -> float | None:
    """Temporal's CPU per saga in ms (None when its process was not measured)."""
    if cpu is None or not sagas or "temporal" not in cpu.process_seconds:
        return None
    return cpu.process_seconds["temporal"] / sagas * 1000


def _orchestrator_ms(cpu: CpuUse | None, sagas: int) -> float | None:
    """The orchestrator's worker's CPU per saga in ms, every copy of it together."""
    if cpu is None or not sagas:
        return None
    seconds = [
        used
        for name, used in cpu.process_seconds.items()
        if split_instance(name)[0] == "orchestrator"
    ]
    return sum(seconds) / sagas * 1000 if seconds else None


def _rss_over(memory: RssPeaks | None) -> dict[str, float] | None:
    """The project's processes by peak RSS, highest first (None when nothing was sampled)."""
    if memory is None:
        return None
    peaks = {name: mb for name, mb in memory.peak_mb.items() if name not in RSS_EXEMPT}
    return dict(sorted(peaks.items(), key=lambda item: -item[1])) if peaks else None


def _at_saturation(value: float | None) -> str:
    return f" (saturation: {_ms(value)})" if value is not None else ""


def _limits(
    sagas: SagaSection,
    paced: PacedSection | None,
    bare: BareSection | None,
    publishing: PublishingSection | None,
    memory: RssPeaks | None,
    temporal_storage: str,
) -> dict[str, str]:
    """What the figures say limits each target, by target key (read only for missed ones)."""
    limits: dict[str, str] = {}
    if paced is not None and paced.publish is not None:
        limits["publish"] = (
            "each event's time from the relay's send to Kafka's ack: the broker's acks=all "
            "append and the wait for the service's event loop (busy with its other work) to "
            f"run the ack; P50 {_ms(paced.publish.p50_ms)} at "
            f"{paced.pacing.rate_per_s:g} orders/s; {_busy(paced.cpu)}"
        )
    delivery = paced.delivery if paced is not None else None
    if paced is not None and delivery is not None and delivery.end_to_end:
        dwell = delivery.outbox_dwell
        limits["delivery"] = (
            f"outbox dwell (event built → producer send) P95 "
            f"{_ms(dwell.p95_ms if dwell else None)} of {_ms(delivery.end_to_end.p95_ms)}; "
            f"the rest is Kafka's ack and the consumer's fetch; {_busy(paced.cpu)}"
        )
    if publishing is not None and publishing.project is not None:
        rates = "; ".join(
            f"{figures.publisher.split(' (')[0]} {figures.records_per_s:,.0f}/s"
            for figures in (publishing.project, publishing.aiokafka, publishing.kafka_tool)
            if figures is not None
        )
        limits["relay"] = (
            "the relay's own work per event in Python on one event loop (read the outbox, "
            "send through aiokafka, mark as published, metrics) where aiokafka alone only "
            f"sends ready records; each batch of 500 is acknowledged before the next: {rates}"
        )
    if bare is not None:
        limits["throughput"] = limits["latency"] = _saga_cost(sagas, bare, temporal_storage)
        saga_bd, bare_bd = sagas.breakdown, bare.breakdown
        if saga_bd is not None and bare_bd is not None:
            limits["history"] = (
                f"{saga_bd.events_per_history:g} events per saga against "
                f"{bare_bd.events_per_history:g}, {saga_bd.search_attribute_upserts:g} of them "
                "search-attribute upserts (the bare workflow has "
                f"{bare_bd.search_attribute_upserts:g}); every upsert is also a visibility write"
            )
        saga_t = _temporal_ms(sagas.cpu, sagas.load.finished)
        bare_t = _temporal_ms(bare.cpu, bare.load.finished)
        if saga_t is not None and bare_t is not None:
            events = (
                f" for {saga_bd.events_per_history:g} history events against "
                f"{bare_bd.events_per_history:g}"
                if saga_bd is not None and bare_bd is not None
                else ""
            )
            limits["temporal_cpu"] = (
                f"Temporal {saga_t:,.0f} ms of CPU per saga against {bare_t:,.0f} ms{events}: "
                "the server's work grows with the events it writes and the workflow tasks it "
                f"dispatches; {_busy(sagas.cpu)}"
            )
    orchestrator = _orchestrator_ms(sagas.cpu, sagas.load.finished)
    if orchestrator is not None:
        limits["orchestrator_cpu"] = (
            f"{orchestrator:,.0f} ms per saga in the orchestrator's worker process, which runs "
            "the saga's workflow tasks (in the workflow sandbox), the order activities, its "
            "outbox relay and four consumers (projector, dispatch bridge, audit, notifications); "
            "`saga bench --profile` shows which"
        )
    over = _rss_over(memory)
    if over is not None:
        limits["memory"] = "over the limit: " + ", ".join(
            f"{name} {mb:,.1f} MB" for name, mb in over.items() if mb >= RSS_LIMIT_MB
        )
    lag = _peak_lag(sagas, paced)
    if lag is not None:
        limits["lag"] = f"peak at {lag.peak_partition}"
    return limits


def _peak_lag(sagas: SagaSection, paced: PacedSection | None) -> LagFigures | None:
    """The lag figures of the order phase (saturation or paced) whose peak was the higher."""
    phases = [
        lag for lag in (sagas.lag, paced.lag if paced else None) if lag is not None and lag.samples
    ]
    return max(phases, key=lambda lag: lag.peak_partition_lag, default=None)


def _bounded(
    name: str,
    value: float | None,
    *,
    at_least: float | None = None,
    at_most: float | None = None,
    unit: str = "x",
) -> Target:
    """A target met when ``value`` is at least ``at_least`` or at most ``at_most``."""
    bound = at_least if at_least is not None else at_most
    assert bound is not None, "a bounded target needs a bound"
    shown = f"{bound:g}{unit}"
    goal = f"≥ {shown}" if at_least is not None else f"≤ {shown}"
    if value is None:
        return Target(name=name, goal=goal, measured="n/a", met=None)
    measured = f"{value:,.1f} ms" if unit == " ms" else f"{value:.2f}{unit}"
    met = value >= at_least if at_least is not None else value <= bound
    return Target(name=name, goal=goal, measured=measured, met=met)


def evaluate_targets(
    sagas: SagaSection,
    bare: BareSection | None,
    publishing: PublishingSection | None,
    ratios: Ratios,
    *,
    temporal_storage: str,
    paced: PacedSection | None = None,
    memory: RssPeaks | None = None,
) -> list[Target]:
    """Issue 15's targets, each met, missed, or not measured, and what limits a missed one.

    The event latencies are judged at the paced load (``--rate``) alone: without it they are
    not measured, and the saturation's figures are shown beside them for information.
    """
    saturation_publish = sagas.publish.p95_ms if sagas.publish else None
    saturation_delivery = _p95(sagas.delivery.end_to_end) if sagas.delivery else None
    publish_p95 = paced.publish.p95_ms if paced and paced.publish else None
    delivery_p95 = _p95(paced.delivery.end_to_end) if paced and paced.delivery else None
    throughput = ratios.saga_vs_bare_throughput
    latency = ratios.saga_vs_bare_latency_p95
    saga_events = sagas.breakdown.events_per_history if sagas.breakdown else None
    bare_events = bare.breakdown.events_per_history if bare and bare.breakdown else None
    saga_temporal = _temporal_ms(sagas.cpu, sagas.load.finished)
    bare_temporal = _temporal_ms(bare.cpu, bare.load.finished) if bare else None
    temporal_ratio = _ratio(saga_temporal, bare_temporal)
    orchestrator = _orchestrator_ms(sagas.cpu, sagas.load.finished)
    vs_aiokafka = ratios.project_vs_aiokafka_throughput
    vs_tool = ratios.project_vs_kafka_tool_throughput
    rss = _rss_over(memory)
    highest = next(iter(rss.items())) if rss else None
    peak_lag = _peak_lag(sagas, paced)
    lag = peak_lag.peak_partition_lag if peak_lag is not None else None

    targets = {
        "throughput": _bounded("saga throughput vs bare workflow", throughput, at_least=0.8),
        "latency": _bounded("saga latency P95 vs bare workflow", latency, at_most=1.3),
        "history": Target(
            name="history events per saga",
            goal="≤ bare + 5",
            measured="n/a"
            if saga_events is None or bare_events is None
            else f"{saga_events:g} (bare {bare_events:g})",
            met=None
            if saga_events is None or bare_events is None
            else saga_events <= bare_events + 5,
        ),
        "temporal_cpu": Target(
            name="Temporal's CPU per saga vs bare workflow",
            goal="≤ 1.15x",
            measured="n/a"
            if temporal_ratio is None or saga_temporal is None or bare_temporal is None
            else f"{temporal_ratio:.2f}x ({saga_temporal:,.0f} vs {bare_temporal:,.0f} ms)",
            met=None if temporal_ratio is None else temporal_ratio <= 1.15,
        ),
        "orchestrator_cpu": _bounded(
            "orchestrator worker's CPU per saga", orchestrator, at_most=20, unit=" ms"
        ),
        "publish": Target(
            name="event publish latency P95 at the paced load (services' histogram)",
            goal="< 10 ms",
            measured=_ms(publish_p95) + _at_saturation(saturation_publish),
            met=None if publish_p95 is None else publish_p95 < 10,
        ),
        "delivery": Target(
            name="end-to-end event delivery P95 at the paced load (built → consumer)",
            goal="< 50 ms",
            measured=_ms(delivery_p95) + _at_saturation(saturation_delivery),
            met=None if delivery_p95 is None else delivery_p95 < 50,
        ),
        "relay_vs_aiokafka": _bounded(
            "one relay vs aiokafka alone (events/s)", vs_aiokafka, at_least=0.5
        ),
        "relay_vs_kafka_tool": _bounded(
            "one relay vs Kafka's ProducerPerformance (events/s)", vs_tool, at_least=0.3
        ),
        "memory": Target(
            name="peak RSS of each project process during the orders (engines aside)",
            goal=f"< {RSS_LIMIT_MB:g} MB",
            measured="n/a" if highest is None else f"{highest[1]:,.1f} MB ({highest[0]})",
            met=None if highest is None else highest[1] < RSS_LIMIT_MB,
        ),
        "lag": Target(
            name="peak consumer lag per partition (orchestrator groups)",
            goal="< 1,000",
            measured="n/a" if lag is None else f"{lag:,}",
            met=None if lag is None else lag < 1000,
        ),
    }
    limits = _limits(sagas, paced, bare, publishing, memory, temporal_storage)
    limits["relay_vs_aiokafka"] = limits["relay_vs_kafka_tool"] = limits.pop("relay", "")
    return [
        target.model_copy(update={"limited_by": limits.get(key) or None})
        if target.met is False
        else target
        for key, target in targets.items()
    ]


def _verdict(target: Target) -> str:
    return {True: "met", False: "MISSED", None: "not measured"}[target.met]


def _grid(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(cell) for cell in column) for column in zip(headers, *rows, strict=False)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in [headers, *rows]
    )


def _markdown_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _saga_rows(report: BenchReport) -> list[list[str]]:
    def row(name: str, load: LoadFigures) -> list[str]:
        latency = load.latency
        return [
            name,
            f"{load.finished}/{load.requested}",
            _num(load.sagas_per_s, 2),
            _num(latency.p50_ms if latency else None, 0),
            _num(latency.p95_ms if latency else None, 0),
            _num(latency.p99_ms if latency else None, 0),
        ]

    rows = [row("order saga (through the API)", report.sagas.load)]
    if report.paced is not None:
        rows.append(
            row(f"order saga, paced at {report.paced.pacing.rate_per_s:g}/s", report.paced.load)
        )
    if report.bare is not None:
        rows.append(row("bare workflow (same shape, no-op)", report.bare.load))
        rows.append(
            [
                "saga / bare",
                "",
                _num(report.ratios.saga_vs_bare_throughput, 2),
                "",
                _num(report.ratios.saga_vs_bare_latency_p95, 2),
                "",
            ]
        )
    return rows


_SAGA_HEADERS = ["", "finished", "sagas/s", "P50 ms", "P95 ms", "P99 ms"]


def _event_rows(
    publish: PublishFigures | None, delivery: DeliveryFigures | None, lag: LagFigures | None
) -> list[list[str]]:
    rows = []
    if publish is not None:
        rows.append(
            [
                "publish latency (services' histogram, send → ack)",
                f"{publish.events:,}",
                _ms(publish.p50_ms),
                _ms(publish.p95_ms),
                _ms(publish.p99_ms),
            ]
        )
    if delivery is not None:
        for name, summary in (
            ("outbox dwell (event built → producer send)", delivery.outbox_dwell),
            ("end-to-end delivery (event built → bench consumer)", delivery.end_to_end),
        ):
            rows.append(
                [
                    name,
                    f"{delivery.events:,}",
                    _ms(summary.p50_ms if summary else None),
                    _ms(summary.p95_ms if summary else None),
                    _ms(summary.p99_ms if summary else None),
                ]
            )
    if lag is not None:
        where = f" ({lag.peak_partition})" if lag.peak_partition else ""
        rows.append(
            [
                "peak consumer lag per partition" + where,
                f"{lag.samples} samples",
                "",
                f"{lag.peak_partition_lag:,}",
                "",
            ]
        )
    return rows


def _saturation_event_rows(report: BenchReport) -> list[list[str]]:
    sagas = report.sagas
    return _event_rows(sagas.publish, sagas.delivery, sagas.lag)


def _paced_event_rows(paced: PacedSection) -> list[list[str]]:
    return _event_rows(paced.publish, paced.delivery, paced.lag)


def _pacing_line(paced: PacedSection) -> str:
    pacing = paced.pacing
    delay = pacing.start_delay
    cap = (
        f"the cap held {pacing.cap_waits} start(s) back: the stack did not keep up"
        if pacing.cap_waits
        else "never reached"
    )
    return (
        f"{paced.load.requested} orders at {pacing.rate_per_s:g}/s ({paced.rate_source}), "
        f"started at {pacing.started_per_s:g}/s, each late by P95 "
        f"{_ms(delay.p95_ms if delay else None)} (max {_ms(delay.max_ms if delay else None)}); "
        f"in flight at most {pacing.peak_in_flight} of a cap of {pacing.in_flight_cap} ({cap})"
    )


_EVENT_HEADERS = ["", "count", "P50", "P95", "P99"]


def _cpu_cell(cpu: CpuUse | None, name: str, sagas: int) -> str:
    if cpu is None:
        return ""
    seconds = cpu.others_seconds if name == "others" else cpu.process_seconds.get(name)
    if seconds is None:
        return ""
    return f"{seconds:,.1f} s ({seconds / sagas * 1000:,.0f})" if sagas else f"{seconds:,.1f} s"


def _cpu_rows(report: BenchReport) -> tuple[list[list[str]], list[str]]:
    """The CPU table's rows and headers: a column for each phase measured, and the peak
    resident size of each process during the orders."""
    phases: list[tuple[str, CpuUse | None, int]] = [
        ("order sagas", report.sagas.cpu, report.sagas.load.finished)
    ]
    if report.paced is not None:
        phases.append(("paced orders", report.paced.cpu, report.paced.load.finished))
    if report.bare is not None:
        phases.append(("bare workflows", report.bare.cpu, report.bare.load.finished))
    if all(cpu is None for _, cpu, _ in phases) and report.memory is None:
        return [], []
    names = list(
        dict.fromkeys(
            [
                *(name for _, cpu, _ in phases if cpu is not None for name in cpu.process_seconds),
                *(report.memory.peak_mb if report.memory else {}),
            ]
        )
    )
    peak = report.memory.peak_mb if report.memory else None

    def rss(name: str | None) -> list[str]:
        if peak is None:
            return []  # no column
        return [_num(peak[name]) if name in peak else ""]

    rows = [
        [name, *(_cpu_cell(cpu, name, count) for _, cpu, count in phases), *rss(name)]
        for name in names
    ]
    rows.append(
        ["others", *(_cpu_cell(cpu, "others", count) for _, cpu, count in phases), *rss(None)]
    )

    def busy(cpu: CpuUse | None) -> str:
        if cpu is None or cpu.machine_busy_share is None:
            return ""
        return f"{cpu.machine_busy_share:.0%} of {cpu.cpus} CPUs for {cpu.wall_s:,.0f} s"

    rows.append(["machine busy", *(busy(cpu) for _, cpu, _ in phases), *rss(None)])
    headers = ["process", *(label for label, _, _ in phases)]
    if report.memory is not None:
        headers.append("peak RSS MB")
    return rows, headers


def _breakdown_rows(report: BenchReport) -> list[list[str]]:
    saga = report.sagas.breakdown
    bare = report.bare.breakdown if report.bare else None
    if saga is None and bare is None:
        return []

    def cell(breakdown: TimeBreakdown | None, part: str) -> str:
        return "" if breakdown is None else f"{breakdown.mean_ms[part]:,.0f}"

    rows = [[part, cell(saga, part), cell(bare, part)] for part in BREAKDOWN_PARTS]
    rows.append(
        [
            "history events (search attribute upserts)",
            ""
            if saga is None
            else f"{saga.events_per_history:g} ({saga.search_attribute_upserts:g})",
            ""
            if bare is None
            else f"{bare.events_per_history:g} ({bare.search_attribute_upserts:g})",
        ]
    )
    rows.append(
        [
            "start to close (histories read)",
            "" if saga is None else f"{saga.total_ms:,.0f} ({saga.histories})",
            "" if bare is None else f"{bare.total_ms:,.0f} ({bare.histories})",
        ]
    )
    return rows


_BREAKDOWN_HEADERS = ["mean ms per saga", "order saga", "bare workflow"]


def _publishing_rows(report: BenchReport) -> list[list[str]]:
    publishing = report.publishing
    if publishing is None:
        return []
    rows = []
    for figures in (
        publishing.kafka_tool,
        publishing.aiokafka,
        publishing.project,
        *publishing.relays,
    ):
        if figures is None:
            continue
        latency = figures.latency
        rows.append(
            [
                figures.publisher,
                f"{figures.records_per_s:,.0f}",
                _num(figures.mb_per_s, 2),
                _num(latency.p50_ms if latency else None),
                _num(latency.p95_ms if latency else None),
                _num(latency.p99_ms if latency else None),
            ]
        )
    ratios = report.ratios
    if ratios.project_vs_kafka_tool_throughput is not None:
        rows.append(
            [
                "project / Kafka tool",
                _num(ratios.project_vs_kafka_tool_throughput, 3),
                "",
                "",
                "",
                "",
            ]
        )
    if ratios.project_vs_aiokafka_throughput is not None:
        rows.append(
            [
                "project / aiokafka alone",
                _num(ratios.project_vs_aiokafka_throughput, 3),
                "",
                "",
                "",
                "",
            ]
        )
    return rows


_PUBLISHING_HEADERS = ["publisher", "records/s", "MB/s", "P50 ms", "P95 ms", "P99 ms"]


def _target_rows(report: BenchReport) -> list[list[str]]:
    return [[t.name, t.goal, t.measured, _verdict(t)] for t in report.targets]


_TARGET_HEADERS = ["target", "goal", "measured", ""]


def _limit_lines(report: BenchReport) -> list[str]:
    return [f"- {t.name}: {t.limited_by}" for t in report.targets if t.limited_by]


def _headline(report: BenchReport) -> str:
    env, sagas = report.environment, report.sagas
    paced = (
        f", then {report.paced.load.requested} at {report.paced.pacing.rate_per_s:g}/s"
        if report.paced is not None
        else ""
    )
    return (
        f"{sagas.load.requested} orders at concurrency {sagas.load.concurrency}{paced}; "
        f"Temporal storage {env.temporal_storage}; carrier dispatch delay "
        f"{sagas.carrier_dispatch_delay_s:g} s (part of every saga's latency)"
    )


def render_text(report: BenchReport) -> str:
    """The report as the terminal shows it."""
    parts = [
        f"saga bench {report.environment.run_id}: {_headline(report)}",
        "",
        _grid(_saga_rows(report), _SAGA_HEADERS),
    ]
    if _breakdown_rows(report):
        parts += ["", "where the time went:", _grid(_breakdown_rows(report), _BREAKDOWN_HEADERS)]
    cpu_rows, cpu_headers = _cpu_rows(report)
    if cpu_rows:
        parts += ["", "CPU seconds (ms per saga):", _grid(cpu_rows, cpu_headers)]
    if report.paced is None:
        parts += ["", _grid(_saturation_event_rows(report), _EVENT_HEADERS)]
    else:
        parts += [
            "",
            "events at saturation:",
            _grid(_saturation_event_rows(report), _EVENT_HEADERS),
            "",
            f"paced: {_pacing_line(report.paced)}",
            "events at the paced load:",
            _grid(_paced_event_rows(report.paced), _EVENT_HEADERS),
        ]
    if report.publishing is not None:
        publishing = report.publishing
        parts += [
            "",
            f"publishing {publishing.records:,} records of {publishing.record_bytes} bytes, "
            f"acks={publishing.acks}, to {publishing.topic}:",
            _grid(_publishing_rows(report), _PUBLISHING_HEADERS),
        ]
    parts += ["", _grid(_target_rows(report), _TARGET_HEADERS)]
    if _limit_lines(report):
        parts += ["what limits the missed ones:", *_limit_lines(report)]
    parts += [f"warning: {warning}" for warning in report.warnings]
    return "\n".join(parts)


def render_markdown(report: BenchReport) -> str:
    """The report as a Markdown document."""
    env = report.environment
    lines = [
        f"# saga bench {env.run_id}",
        "",
        f"`{env.command}` on {env.started_at}: {_headline(report)}.",
        f"API {env.api_url}, Temporal {env.temporal_address}, Apache Kafka {env.kafka_version} "
        f"at {env.kafka_bootstrap_servers}, {env.cpus or '?'} CPUs.",
        "",
        "## Sagas",
        "",
        _markdown_table(_saga_rows(report), ["saga", *_SAGA_HEADERS[1:]]),
        "",
        "Latency: from the order's acceptance (the API's 202; Temporal's answer for the bare "
        "workflow) to the end of its saga, over the completed ones.",
    ]
    if report.bare is not None:
        lines += [f"Bare workflow: {report.bare.shape}."]
    if _breakdown_rows(report):
        lines += [
            "",
            "### Where the time went",
            "",
            _markdown_table(_breakdown_rows(report), _BREAKDOWN_HEADERS),
            "",
            "From the Temporal histories of a sample of the run's sagas, spread over the run. "
            "The carrier's delay runs from the shipment's scheduling: what of it the saga spent "
            "with a workflow task queued counts there.",
        ]
    cpu_rows, cpu_headers = _cpu_rows(report)
    if cpu_rows:
        rss = (
            f"; peak RSS: the highest resident size of each process during the orders, "
            f"sampled every {report.memory.interval_s:g} s ({report.memory.samples} samples)"
            if report.memory is not None
            else ""
        )
        lines += [
            "",
            "### CPU and memory",
            "",
            _markdown_table(cpu_rows, cpu_headers),
            "",
            "CPU seconds per process while the sagas ran (ms per saga in brackets); "
            f"`others`: everything else on the machine{rss}.",
        ]
    lines += [
        "",
        "## Events",
        "",
        _markdown_table(_saturation_event_rows(report), ["measure", *_EVENT_HEADERS[1:]]),
        "",
        "Publish latency is estimated within the services' histogram buckets; outbox dwell "
        "and end-to-end delivery are measured per event by the bench's own consumer group.",
    ]
    if report.paced is not None:
        lines += [
            "",
            "### At the paced load",
            "",
            _pacing_line(report.paced) + ".",
            "",
            _markdown_table(_paced_event_rows(report.paced), ["measure", *_EVENT_HEADERS[1:]]),
            "",
            "The paced orders' own events (end-to-end), and the services' histogram between "
            "the paced phase's start and end (publish).",
        ]
    if report.publishing is not None:
        publishing = report.publishing
        lines += [
            "",
            "## Publishing",
            "",
            f"{publishing.records:,} records of {publishing.record_bytes} bytes "
            f"(an encoded `payment.completed.v1`), acks={publishing.acks}, "
            f"to `{publishing.topic}`; latency from the producer's send to the broker's ack.",
            "",
            _markdown_table(_publishing_rows(report), _PUBLISHING_HEADERS),
        ]
        for figures in (
            publishing.kafka_tool,
            publishing.aiokafka,
            publishing.project,
            *publishing.relays,
        ):
            if figures is not None:
                lines += [f"- {figures.publisher}: {'; '.join(figures.notes)}"]
    lines += ["", "## Targets", "", _markdown_table(_target_rows(report), _TARGET_HEADERS)]
    if _limit_lines(report):
        lines += ["", "What limits the missed ones:", "", *_limit_lines(report)]
    if report.profiles:
        lines += ["", "## Profiles (py-spy, during the orders)", ""]
        for profile in report.profiles:
            spots = ", ".join(f"`{spot.function}` {spot.share:.0%}" for spot in profile.hot_spots)
            lines += [
                f"- {profile.process} (pid {profile.pid}, {profile.samples} samples, "
                f"`{profile.profile}`): {spots}"
            ]
    if report.warnings:
        lines += ["", "## Warnings", ""] + [f"- {warning}" for warning in report.warnings]
    return "\n".join(lines) + "\n"


def write_reports(report: BenchReport, folder: Path) -> tuple[Path, Path]:
    """Write ``bench-<run id>.json`` and ``.md`` into ``folder``; return their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    json_path = folder / f"bench-{report.environment.run_id}.json"
    markdown_path = json_path.with_suffix(".md")
    json_path.write_text(report.model_dump_json(indent=2) + "\n")
    markdown_path.write_text(render_markdown(report))
    return json_path, markdown_path
