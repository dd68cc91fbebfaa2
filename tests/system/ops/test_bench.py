"""`saga bench` on the session's stack with a handful of orders, and the arithmetic it relies on."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.config.settings import Settings
from ops.bench import BenchReport, render_markdown, render_text
from ops.bench.kafka_tools import parse_summary
from ops.bench.stats import histogram_counts, histogram_quantile, subtract, summarize
from tests.system.conftest import CARRIER_DELAY

ORDERS = 5
RECORDS = 500
EVENTS_PER_SAGA = 6


def _ordered(latency: dict[str, float]) -> None:
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_bench_reports_consistent_figures(stack: Settings, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGA_")}
    env.update(stack.as_env())
    command = [
        sys.executable, "-m", "cli", "bench",
        "--orders", str(ORDERS), "--concurrency", str(ORDERS),
        "--bare-dispatch-wait", "0.2",
        "--records", str(RECORDS), "--skip-kafka-tools",
        "--report-dir", str(tmp_path), "--json",
    ]  # fmt: skip
    bench = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert bench.returncode == 0, bench.stderr
    report = json.loads(bench.stdout)

    sagas = report["sagas"]["load"]
    assert (sagas["requested"], sagas["finished"], sagas["completed"]) == (ORDERS,) * 3
    assert sagas["failed"] == 0 and sagas["sagas_per_s"] > 0
    _ordered(sagas["latency"])
    assert sagas["latency"]["count"] == ORDERS
    # Every saga waits for the carrier, which the stack makes wait CARRIER_DELAY seconds.
    assert sagas["latency"]["p50_ms"] >= CARRIER_DELAY * 1000
    assert report["sagas"]["carrier_dispatch_delay_s"] == CARRIER_DELAY

    delivery = report["sagas"]["delivery"]
    assert delivery["events"] == ORDERS * EVENTS_PER_SAGA
    assert set(delivery["by_type"].values()) == {ORDERS}
    _ordered(delivery["end_to_end"])
    assert report["sagas"]["publish"]["events"] >= ORDERS * EVENTS_PER_SAGA
    assert report["sagas"]["publish"]["p95_ms"] > 0
    assert report["sagas"]["lag"]["samples"] > 0
    breakdown = report["sagas"]["breakdown"]
    assert breakdown["histories"] == ORDERS
    assert breakdown["mean_ms"]["waiting for the carrier"] >= CARRIER_DELAY * 1000 * 0.75
    assert sum(breakdown["mean_ms"].values()) == pytest.approx(breakdown["total_ms"], abs=1)
    cpu = report["sagas"]["cpu"]["process_seconds"]
    assert {"orchestrator", "payment", "inventory", "shipping", "api", "bench"} <= set(cpu)

    bare = report["bare"]["load"]
    assert (bare["finished"], bare["completed"], bare["failed"]) == (ORDERS, ORDERS, 0)
    _ordered(bare["latency"])
    assert bare["latency"]["p50_ms"] >= 200  # the timer standing for the carrier
    assert report["bare"]["breakdown"]["histories"] == ORDERS
    assert report["bare"]["breakdown"]["mean_ms"]["waiting for the carrier"] >= 190

    publishing = report["publishing"]
    assert publishing["kafka_tool"] is None  # --skip-kafka-tools
    for publisher in (publishing["aiokafka"], publishing["project"]):
        assert publisher["records"] == RECORDS and publisher["records_per_s"] > 0
        assert publisher["latency"]["count"] == RECORDS
        _ordered(publisher["latency"])

    assert report["ratios"]["saga_vs_bare_throughput"] > 0
    assert report["ratios"]["project_vs_kafka_tool_throughput"] is None
    measured = {t["name"]: t["met"] for t in report["targets"]}
    assert len(measured) == 6
    assert None not in measured.values()

    json_path, markdown_path = (
        Path(line.removeprefix("report: ")) for line in bench.stderr.splitlines()[-2:]
    )
    written = BenchReport.model_validate_json(json_path.read_text())
    assert written.model_dump(mode="json") == report
    assert markdown_path.read_text() == render_markdown(written)
    assert "saga throughput vs bare Temporal" in render_text(written)


def test_percentiles_of_measurements_and_of_histograms() -> None:
    summary = summarize([0.001 * n for n in range(1, 101)])
    assert summary is not None
    assert (summary.count, summary.p50_ms, summary.max_ms) == (100, 50.5, 100.0)
    assert summarize([]) is None

    def scrape(fast: int, slow: int) -> str:
        return (
            "# TYPE event_publish_latency_seconds histogram\n"
            f'event_publish_latency_seconds_bucket{{le="0.01",topic="a"}} {fast}\n'
            f'event_publish_latency_seconds_bucket{{le="0.1",topic="a"}} {fast + slow}\n'
            f'event_publish_latency_seconds_bucket{{le="+Inf",topic="a"}} {fast + slow}\n'
            f'event_publish_latency_seconds_count{{topic="a"}} {fast + slow}\n'
            f'event_publish_latency_seconds_sum{{topic="a"}} 1.0\n'
        )

    name = "event_publish_latency_seconds"
    delta = subtract(histogram_counts(scrape(90, 20), name), histogram_counts(scrape(0, 10), name))
    assert delta == {0.01: 90.0, 0.1: 100.0, float("inf"): 100.0}
    assert histogram_quantile(delta, 0.5) == pytest.approx(0.01 * 50 / 90)
    assert histogram_quantile(delta, 0.95) == pytest.approx(0.01 + 0.09 * 5 / 10)
    assert histogram_quantile({0.01: 0.0, float("inf"): 0.0}, 0.95) is None


def test_producer_performance_summary_is_read() -> None:
    line = (
        "100000 records sent, 41580.041580 records/sec (7.45 MB/sec), 152.49 ms avg latency, "
        "592.00 ms max latency, 140 ms 50th, 305 ms 95th, 392 ms 99th, 440 ms 99.9th."
    )
    figures = parse_summary(line)
    assert figures is not None
    assert figures.records == 100_000 and figures.records_per_s == pytest.approx(41580.0)
    assert figures.latency is not None and figures.latency.p95_ms == 305
    window = "207006 records sent, 41393.0 records/sec (7.42 MB/sec), 150.2 ms avg latency, "
    assert parse_summary(window + "560.0 ms max latency.") is None
