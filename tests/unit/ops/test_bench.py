"""The arithmetic `saga bench` relies on: percentiles of measurements and of histograms, and
Kafka's producer performance summary. The bench on a stack: ``tests/system/ops/test_bench.py``."""

import pytest

from ops.bench.kafka_tools import TOOLS_POM, parse_summary
from ops.bench.stats import histogram_counts, histogram_quantile, subtract, summarize


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


def test_the_kafka_tools_project_is_where_the_bench_looks() -> None:
    """The layout change moved Kafka's resources under infra/engines: the bench's Maven
    project must be found there (it was not, and `saga bench` failed without
    --skip-kafka-tools)."""
    assert TOOLS_POM.is_file()
    assert "kafka-tools" in TOOLS_POM.read_text()
