"""The bench's report: its figures, the targets met or missed, and their text renderings."""

from collections.abc import Sequence
from pathlib import Path

from pydantic import BaseModel

from ops.bench.breakdown import BREAKDOWN_PARTS, TimeBreakdown
from ops.bench.cpu import CpuUse
from ops.bench.load import LoadFigures
from ops.bench.observe import DeliveryFigures, LagFigures, PublishFigures
from ops.bench.profiling import ProcessProfile
from ops.bench.publisher import PublisherFigures
from ops.bench.stats import LatencySummary

__all__ = [
    "BareSection",
    "BenchReport",
    "Environment",
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
    """One target of the issue (design document 002 for the event figures)."""

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
    bare: BareSection | None
    publishing: PublishingSection | None
    ratios: Ratios
    targets: list[Target]
    profiles: list[ProcessProfile] = []
    """py-spy's view of each process during the orders (``--profile``)."""
    warnings: list[str]


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
    storage = {
        "file": "Temporal's dev server stores every history event in SQLite "
        "(SAGA_TEMPORAL_STORAGE=file, write-ahead log)",
        "postgresql": "Temporal's full server stores every history event and visibility "
        "record in PostgreSQL, on the same two cores",
    }
    parts = [
        f"{storage[temporal_storage]}: CPU per history event and search-attribute upsert, the "
        "saga's extra events cost on both cores"
        if temporal_storage in storage
        else "Temporal in memory: bound by CPU"
    ]
    saga_bd, bare_bd = sagas.breakdown, bare.breakdown
    if saga_bd is not None and bare_bd is not None:
        queued = "workflow tasks queued (scheduled → started)"
        parts.append(
            f"per saga {saga_bd.events_per_history:g} history events "
            f"({saga_bd.search_attribute_upserts:g} search-attribute upserts) vs "
            f"{bare_bd.events_per_history:g}, workflow tasks queued "
            f"{saga_bd.mean_ms[queued]:,.0f} ms vs {bare_bd.mean_ms[queued]:,.0f} ms"
        )
    saga_cpu = _cpu_per_saga(sagas.cpu, sagas.load.finished, exclude=("bench",))
    bare_cpu = _cpu_per_saga(bare.cpu, bare.load.finished)
    if saga_cpu is not None and bare_cpu is not None and sagas.cpu and bare.cpu:
        temporal = sagas.cpu.process_seconds.get("temporal", 0.0) / sagas.load.finished * 1000
        bare_temporal = bare.cpu.process_seconds.get("temporal", 0.0) / bare.load.finished * 1000
        parts.append(
            f"CPU per saga {saga_cpu:,.0f} ms (Temporal {temporal:,.0f}) vs {bare_cpu:,.0f} ms "
            f"(Temporal {bare_temporal:,.0f}, the rest the bench's no-op workers)"
        )
    parts.append(_busy(sagas.cpu))
    return "; ".join(part for part in parts if part)


def _limits(
    sagas: SagaSection,
    bare: BareSection | None,
    publishing: PublishingSection | None,
    temporal_storage: str,
) -> dict[str, str]:
    """What the figures say limits each target, by target name (read only for missed ones)."""
    limits: dict[str, str] = {}
    busy = _busy(sagas.cpu)
    delivery = sagas.delivery
    if sagas.publish is not None:
        limits["publish"] = (
            "each event's time from the relay's send to Kafka's ack, which includes the "
            "producer's 2 ms linger (linger.ms), the broker's acks=all append and the wait for "
            "the service's event loop to run the ack; "
            f"P50 {_ms(sagas.publish.p50_ms)}; {busy}"
        )
    if delivery is not None and delivery.end_to_end and delivery.outbox_dwell:
        limits["delivery"] = (
            f"outbox dwell P95 {_ms(delivery.outbox_dwell.p95_ms)} of "
            f"{_ms(delivery.end_to_end.p95_ms)}; the rest is Kafka's ack and the fetch; {busy}"
        )
    if publishing is not None and publishing.project is not None:
        others = [
            f"{figures.publisher.split(' (')[0]} {figures.records_per_s:,.0f}/s"
            for figures in (publishing.kafka_tool, publishing.aiokafka)
            if figures is not None
        ]
        limits["publisher"] = (
            "per-event Python work on one event loop: aiokafka's send, the relay's SQLite "
            "read and mark, its metrics and a log line per batch at INFO; each batch of 500 is "
            "acknowledged before the next is read (" + "; ".join(others) + ")"
        )
    if bare is not None:
        limits["throughput"] = limits["latency"] = _saga_cost(sagas, bare, temporal_storage)
    if sagas.lag is not None:
        limits["lag"] = f"peak at {sagas.lag.peak_partition}"
    return limits


def evaluate_targets(
    sagas: SagaSection,
    bare: BareSection | None,
    publishing: PublishingSection | None,
    ratios: Ratios,
    *,
    temporal_storage: str,
) -> list[Target]:
    """The issue's targets, each met, missed, or not measured, and what limits a missed one."""
    publish_p95 = sagas.publish.p95_ms if sagas.publish else None
    delivery_p95 = _p95(sagas.delivery.end_to_end) if sagas.delivery else None
    project_rate = publishing.project.records_per_s if publishing and publishing.project else None
    lag = sagas.lag.peak_partition_lag if sagas.lag and sagas.lag.samples else None
    throughput = ratios.saga_vs_bare_throughput
    latency = ratios.saga_vs_bare_latency_p95
    targets = [
        Target(
            name="event publish latency P95 (services' histogram)",
            goal="< 10 ms",
            measured=_ms(publish_p95),
            met=None if publish_p95 is None else publish_p95 < 10,
        ),
        Target(
            name="end-to-end event delivery P95 (event built → consumer)",
            goal="< 100 ms",
            measured=_ms(delivery_p95),
            met=None if delivery_p95 is None else delivery_p95 < 100,
        ),
        Target(
            name="events/s from one publisher process (outbox relay)",
            goal="≥ 10,000",
            measured="n/a" if project_rate is None else f"{project_rate:,.0f}",
            met=None if project_rate is None else project_rate >= 10_000,
        ),
        Target(
            name="saga throughput vs bare Temporal",
            goal="≥ 80%",
            measured="n/a" if throughput is None else f"{throughput:.0%}",
            met=None if throughput is None else throughput >= 0.8,
        ),
        Target(
            name="saga latency P95 vs bare Temporal",
            goal="≤ 1.5x",
            measured="n/a" if latency is None else f"{latency:.2f}x",
            met=None if latency is None else latency <= 1.5,
        ),
        Target(
            name="peak consumer lag per partition (orchestrator groups)",
            goal="< 1,000",
            measured="n/a" if lag is None else f"{lag:,}",
            met=None if lag is None else lag < 1000,
        ),
    ]
    limits = _limits(sagas, bare, publishing, temporal_storage)
    keys = ("publish", "delivery", "publisher", "throughput", "latency", "lag")
    return [
        target.model_copy(update={"limited_by": limits.get(key)}) if target.met is False else target
        for target, key in zip(targets, keys, strict=True)
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


def _event_rows(report: BenchReport) -> list[list[str]]:
    sagas = report.sagas
    publish, delivery, lag = sagas.publish, sagas.delivery, sagas.lag
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


_EVENT_HEADERS = ["", "count", "P50", "P95", "P99"]


def _cpu_cell(cpu: CpuUse | None, name: str, sagas: int) -> str:
    if cpu is None:
        return ""
    seconds = cpu.others_seconds if name == "others" else cpu.process_seconds.get(name)
    if seconds is None:
        return ""
    return f"{seconds:,.1f} s ({seconds / sagas * 1000:,.0f})" if sagas else f"{seconds:,.1f} s"


def _cpu_rows(report: BenchReport) -> list[list[str]]:
    saga_cpu = report.sagas.cpu
    bare_cpu = report.bare.cpu if report.bare else None
    if saga_cpu is None and bare_cpu is None:
        return []
    names = list(
        dict.fromkeys(
            [
                *(saga_cpu.process_seconds if saga_cpu else {}),
                *(bare_cpu.process_seconds if bare_cpu else {}),
            ]
        )
    )
    saga_count = report.sagas.load.finished
    bare_count = report.bare.load.finished if report.bare else 0
    rows = [
        [name, _cpu_cell(saga_cpu, name, saga_count), _cpu_cell(bare_cpu, name, bare_count)]
        for name in [*names, "others"]
    ]

    def busy(cpu: CpuUse | None) -> str:
        if cpu is None or cpu.machine_busy_share is None:
            return ""
        return f"{cpu.machine_busy_share:.0%} of {cpu.cpus} CPUs for {cpu.wall_s:,.0f} s"

    rows.append(["machine busy", busy(saga_cpu), busy(bare_cpu)])
    return rows


_CPU_HEADERS = ["process", "order sagas", "bare workflows"]


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
    return (
        f"{sagas.load.requested} orders at concurrency {sagas.load.concurrency}; "
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
    cpu_rows = _cpu_rows(report)
    if cpu_rows:
        parts += ["", "CPU seconds (ms per saga):", _grid(cpu_rows, _CPU_HEADERS)]
    parts += ["", _grid(_event_rows(report), _EVENT_HEADERS)]
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
    cpu_rows = _cpu_rows(report)
    if cpu_rows:
        lines += [
            "",
            "### CPU",
            "",
            _markdown_table(cpu_rows, _CPU_HEADERS),
            "",
            "CPU seconds per process while the sagas ran (ms per saga in brackets); "
            "`others`: everything else on the machine.",
        ]
    lines += [
        "",
        "## Events",
        "",
        _markdown_table(_event_rows(report), ["measure", *_EVENT_HEADERS[1:]]),
        "",
        "Publish latency is estimated within the services' histogram buckets; outbox dwell "
        "and end-to-end delivery are measured per event by the bench's own consumer group.",
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
