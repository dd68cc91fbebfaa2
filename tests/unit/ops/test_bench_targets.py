"""`saga bench`'s judgement: issue 15's targets from given figures (met, missed, not
measured, and what limits a missed one), and the report's renderings of a paced run."""

import pytest

from ops.bench.breakdown import BREAKDOWN_PARTS, TimeBreakdown
from ops.bench.cpu import CpuUse
from ops.bench.load import LoadFigures, PacingFigures
from ops.bench.memory import RssPeaks
from ops.bench.observe import DeliveryFigures, LagFigures, PublishFigures
from ops.bench.publisher import PublisherFigures
from ops.bench.report import (
    BareSection,
    BenchReport,
    Environment,
    PacedSection,
    PublishingSection,
    SagaSection,
    Target,
    evaluate_targets,
    judged_report,
    ratios_of,
    render_markdown,
    render_text,
)
from ops.bench.stats import LatencySummary


def _latency(p50_ms: float, p95_ms: float) -> LatencySummary:
    return LatencySummary(
        count=100, p50_ms=p50_ms, p95_ms=p95_ms, p99_ms=p95_ms, mean_ms=p50_ms, max_ms=p95_ms
    )


def _load(sagas_per_s: float, p95_ms: float, finished: int = 400) -> LoadFigures:
    return LoadFigures(
        requested=finished,
        concurrency=50,
        finished=finished,
        completed=finished,
        cancelled=0,
        failed=0,
        duration_s=finished / sagas_per_s,
        sagas_per_s=sagas_per_s,
        latency=_latency(p95_ms * 0.75, p95_ms),
    )


def _cpu(ms_per_saga: dict[str, float], sagas: int = 400) -> CpuUse:
    return CpuUse(
        wall_s=30.0,
        cpus=2,
        machine_busy_share=0.9,
        process_seconds={name: ms * sagas / 1000 for name, ms in ms_per_saga.items()},
        others_seconds=1.0,
    )


def _breakdown(events: float, upserts: float) -> TimeBreakdown:
    return TimeBreakdown(
        histories=24,
        total_ms=1000.0,
        mean_ms=dict.fromkeys(BREAKDOWN_PARTS, 1000.0 / len(BREAKDOWN_PARTS)),
        events_per_history=events,
        search_attribute_upserts=upserts,
    )


def _publish(p95_ms: float) -> PublishFigures:
    return PublishFigures(
        events=2400,
        p50_ms=p95_ms / 4,
        p95_ms=p95_ms,
        p99_ms=p95_ms,
        bucket_bounds_ms=[5.0, 10.0, 25.0, 50.0],
        by_service={},
        unavailable=[],
    )


def _delivery(p95_ms: float, dwell_p95_ms: float) -> DeliveryFigures:
    return DeliveryFigures(
        events=2400,
        by_type={"order.placed": 400},
        end_to_end=_latency(p95_ms / 2, p95_ms),
        outbox_dwell=_latency(dwell_p95_ms / 2, dwell_p95_ms),
    )


def _lag(peak: int) -> LagFigures:
    return LagFigures(
        samples=40,
        interval_s=0.25,
        peak_partition_lag=peak,
        peak_partition="saga-orchestrator payment.events[0]",
        peak_group_lag={"saga-orchestrator": peak},
    )


def _publisher(name: str, per_s: float) -> PublisherFigures:
    return PublisherFigures(
        publisher=name,
        records=50_000,
        record_bytes=600,
        duration_s=50_000 / per_s,
        records_per_s=per_s,
        mb_per_s=per_s * 600 / 1e6,
        latency=None,
    )


def _sagas(
    *, sagas_per_s: float, p95_ms: float, cpu: dict[str, float], events: float, publish_p95: float
) -> SagaSection:
    return SagaSection(
        load=_load(sagas_per_s, p95_ms),
        carrier_dispatch_delay_s=1.0,
        publish=_publish(publish_p95),
        delivery=_delivery(40.8, 12.0),
        lag=_lag(14),
        cpu=_cpu(cpu),
        breakdown=_breakdown(events, 10 if events > 40 else 0),
    )


def _bare(*, sagas_per_s: float, p95_ms: float, temporal_ms: float) -> BareSection:
    return BareSection(
        load=_load(sagas_per_s, p95_ms),
        dispatch_wait_s=1.0,
        shape="5 no-op activities",
        cpu=_cpu({"temporal": temporal_ms, "bench": 20.0}),
        breakdown=_breakdown(40, 0),
    )


def _publishing(project: float, aiokafka: float, tool: float) -> PublishingSection:
    return PublishingSection(
        topic="saga-bench-x",
        records=50_000,
        record_bytes=600,
        acks="all",
        kafka_tool=_publisher("Kafka ProducerPerformance (Java)", tool),
        aiokafka=_publisher("aiokafka alone", aiokafka),
        project=_publisher("project publisher (outbox relay)", project),
    )


def _paced(*, publish_p95: float, delivery_p95: float, lag: int = 3) -> PacedSection:
    return PacedSection(
        rate_source="auto: 70% of the saturation's 11.67 sagas/s",
        load=_load(8.0, 3000.0, finished=240),
        pacing=PacingFigures(
            rate_per_s=8.17,
            started_per_s=8.16,
            in_flight_cap=100,
            peak_in_flight=30,
            cap_waits=0,
            start_delay=_latency(1.0, 3.0),
        ),
        publish=_publish(publish_p95),
        delivery=_delivery(delivery_p95, delivery_p95 / 3),
        lag=_lag(lag),
        cpu=_cpu({"temporal": 50.0}, sagas=240),
    )


def _memory(**peaks: float) -> RssPeaks:
    return RssPeaks(interval_s=1.0, samples=60, peak_mb=peaks)


ISSUE_15_CPU = {"temporal": 70.0, "orchestrator": 46.0, "kafka": 17.0, "bench": 30.0}
"""The CPU per saga (ms) of the issue's measurement: every target it names is missed."""


def _judge(
    sagas: SagaSection,
    bare: BareSection | None = None,
    publishing: PublishingSection | None = None,
    paced: PacedSection | None = None,
    memory: RssPeaks | None = None,
) -> dict[str, Target]:
    targets = evaluate_targets(
        sagas,
        bare,
        publishing,
        ratios_of(sagas, bare, publishing),
        temporal_storage="file",
        paced=paced,
        memory=memory,
    )
    return {target.name: target for target in targets}


PUBLISH = "event publish latency P95 at the paced load (services' histogram)"
DELIVERY = "end-to-end event delivery P95 at the paced load (built → consumer)"
MEMORY = "peak RSS of each project process during the orders (engines aside)"


def test_the_issues_own_figures_miss_what_it_says_they_miss() -> None:
    targets = _judge(
        _sagas(sagas_per_s=11.67, p95_ms=5190, cpu=ISSUE_15_CPU, events=53, publish_p95=23.0),
        _bare(sagas_per_s=21.05, p95_ms=2870, temporal_ms=49.0),
        _publishing(project=10_295, aiokafka=46_791, tool=62_422),
        _paced(publish_p95=23.0, delivery_p95=40.8),
        _memory(orchestrator=161.4, payment=105.2, api=103.4, kafka=651.5, temporal=625.7),
    )
    verdicts = {name: target.met for name, target in targets.items()}
    assert verdicts == {
        "saga throughput vs bare workflow": False,  # 0.55x
        "saga latency P95 vs bare workflow": False,  # 1.81x
        "history events per saga": False,  # 53 > 40 + 5
        "Temporal's CPU per saga vs bare workflow": False,  # 70 / 49 = 1.43x
        "orchestrator worker's CPU per saga": False,  # 46 ms
        PUBLISH: False,  # 23 ms
        DELIVERY: True,  # 40.8 ms
        "one relay vs aiokafka alone (events/s)": False,  # 0.22x
        "one relay vs Kafka's ProducerPerformance (events/s)": False,  # 0.165x
        MEMORY: False,  # the orchestrator's 161.4 MB
        "peak consumer lag per partition (orchestrator groups)": True,
    }
    assert targets["saga throughput vs bare workflow"].measured == "0.55x"
    assert targets["history events per saga"].measured == "53 (bare 40)"
    assert targets["Temporal's CPU per saga vs bare workflow"].measured == "1.43x (70 vs 49 ms)"
    assert targets["orchestrator worker's CPU per saga"].measured == "46.0 ms"
    assert targets[MEMORY].measured == "161.4 MB (orchestrator)"
    assert targets[PUBLISH].measured == "23.0 ms (saturation: 23.0 ms)"
    # Every missed target says what limits it, from the run's own figures.
    for target in targets.values():
        assert (target.limited_by is not None) == (target.met is False), target.name
    assert "orchestrator 161.4 MB" in (targets[MEMORY].limited_by or "")
    assert "kafka" not in (targets[MEMORY].limited_by or "")
    assert "53 events per saga against 40" in (targets["history events per saga"].limited_by or "")


def test_figures_at_the_bounds_meet_the_targets() -> None:
    targets = _judge(
        _sagas(
            sagas_per_s=16.0,
            p95_ms=2600,
            cpu={"temporal": 57.5, "orchestrator": 12.0, "orchestrator-2": 8.0},
            events=45,
            publish_p95=40.0,
        ),
        _bare(sagas_per_s=20.0, p95_ms=2000, temporal_ms=50.0),
        _publishing(project=15_000, aiokafka=30_000, tool=50_000),
        _paced(publish_p95=9.9, delivery_p95=49.9),
        # the engines' memory is theirs to size: Kafka's JVM heap, Temporal's caches
        _memory(orchestrator=149.9, **{"orchestrator-2": 120.0, "kafka": 651.5, "temporal": 626}),
    )
    assert {name: t.met for name, t in targets.items() if not t.met} == {}
    assert all(target.limited_by is None for target in targets.values())
    # Both copies of the orchestrator's worker count: 20 ms per saga together.
    assert targets["orchestrator worker's CPU per saga"].measured == "20.0 ms"
    # At saturation the publish latency is 40 ms: shown beside, not judged.
    assert targets[PUBLISH].measured == "9.9 ms (saturation: 40.0 ms)"


def test_just_past_the_bounds_misses_them() -> None:
    targets = _judge(
        _sagas(
            sagas_per_s=15.9,
            p95_ms=2610,
            cpu={"temporal": 57.6, "orchestrator": 20.1},
            events=45.1,
            publish_p95=5.0,
        ),
        _bare(sagas_per_s=20.0, p95_ms=2000, temporal_ms=50.0),
        _publishing(project=14_900, aiokafka=30_000, tool=50_000),
        _paced(publish_p95=10.0, delivery_p95=50.0, lag=1000),
        _memory(api=150.0),
    )
    assert {name: t.met for name, t in targets.items() if t.met is not False} == {}


def test_without_a_paced_run_the_event_latencies_are_not_measured() -> None:
    """The saturation's figures are shown, but judged only at the paced load."""
    targets = _judge(
        _sagas(sagas_per_s=11.67, p95_ms=5190, cpu=ISSUE_15_CPU, events=53, publish_p95=4.0)
    )
    assert targets[PUBLISH].met is None
    assert targets[PUBLISH].measured == "n/a (saturation: 4.0 ms)"
    assert targets[DELIVERY].met is None
    assert targets[DELIVERY].measured == "n/a (saturation: 40.8 ms)"
    # Nothing to compare with: no bare workflow, no publishers, no memory samples.
    not_measured = [name for name, target in targets.items() if target.met is None]
    assert len(not_measured) == 9
    assert targets["orchestrator worker's CPU per saga"].met is False  # needs nothing else
    assert targets["peak consumer lag per partition (orchestrator groups)"].met is True


def test_the_consumer_lag_is_the_higher_of_both_phases() -> None:
    sagas = _sagas(sagas_per_s=10, p95_ms=3000, cpu=ISSUE_15_CPU, events=45, publish_p95=5.0)
    lag = "peak consumer lag per partition (orchestrator groups)"
    assert _judge(sagas, paced=_paced(publish_p95=5, delivery_p95=20, lag=1500))[lag].met is False
    assert _judge(sagas, paced=_paced(publish_p95=5, delivery_p95=20, lag=3))[lag].measured == "14"


def _report(paced: PacedSection | None, memory: RssPeaks | None) -> BenchReport:
    sagas = _sagas(sagas_per_s=11.67, p95_ms=5190, cpu=ISSUE_15_CPU, events=53, publish_p95=23)
    bare = _bare(sagas_per_s=21.05, p95_ms=2870, temporal_ms=49.0)
    return judged_report(
        Environment(
            run_id="r",
            started_at="2026-12-06T10:00:00+00:00",
            api_url="http://127.0.0.1:8000",
            temporal_address="127.0.0.1:7233",
            temporal_storage="file",
            kafka_bootstrap_servers="127.0.0.1:9092",
            kafka_version="4.1.1",
            cpus=2,
            command="saga bench --rate auto",
        ),
        sagas=sagas,
        paced=paced,
        bare=bare,
        publishing=None,
        memory=memory,
        profiles=[],
        warnings=[],
    )


def test_a_paced_run_has_its_own_rows_and_the_cpu_table_a_column_of_peak_rss() -> None:
    report = _report(
        _paced(publish_p95=8.0, delivery_p95=30.0), _memory(orchestrator=161.4, kafka=651.5)
    )
    text = render_text(report)
    assert "order saga, paced at 8.17/s" in text
    assert "events at the paced load:" in text
    assert "in flight at most 30 of a cap of 100 (never reached)" in text
    cpu_header = next(line for line in text.splitlines() if line.startswith("process"))
    assert cpu_header.split() == [
        "process", "order", "sagas", "paced", "orders", "bare", "workflows", "peak", "RSS", "MB",
    ]  # fmt: skip
    orchestrator_row = next(line for line in text.splitlines() if line.startswith("orchestrator"))
    assert orchestrator_row.rstrip().endswith("161.4")
    markdown = render_markdown(report)
    assert "### At the paced load" in markdown
    assert "| process | order sagas | paced orders | bare workflows | peak RSS MB |" in markdown
    assert BenchReport.model_validate_json(report.model_dump_json()) == report


def test_without_a_paced_run_the_report_keeps_its_shape() -> None:
    text = render_text(_report(None, None))
    assert "order saga, paced" not in text and "events at the paced load" not in text
    cpu_header = next(line for line in text.splitlines() if line.startswith("process"))
    assert cpu_header.split() == ["process", "order", "sagas", "bare", "workflows"]


@pytest.mark.parametrize("missing", ["bare", "publishing"])
def test_targets_that_need_a_left_out_part_are_not_measured(missing: str) -> None:
    sagas = _sagas(sagas_per_s=11.67, p95_ms=5190, cpu=ISSUE_15_CPU, events=53, publish_p95=4)
    bare = None if missing == "bare" else _bare(sagas_per_s=21, p95_ms=2870, temporal_ms=49)
    publishing = None if missing == "publishing" else _publishing(10_000, 40_000, 60_000)
    targets = _judge(sagas, bare, publishing)
    needs_bare = [
        "saga throughput vs bare workflow",
        "saga latency P95 vs bare workflow",
        "history events per saga",
        "Temporal's CPU per saga vs bare workflow",
    ]
    needs_publishing = [
        "one relay vs aiokafka alone (events/s)",
        "one relay vs Kafka's ProducerPerformance (events/s)",
    ]
    absent, present = (
        (needs_bare, needs_publishing) if missing == "bare" else (needs_publishing, needs_bare)
    )
    assert all(targets[name].met is None for name in absent)
    assert all(targets[name].met is not None for name in present)
