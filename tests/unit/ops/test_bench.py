"""The arithmetic `saga bench` relies on: percentiles of measurements and of histograms,
Kafka's producer performance summary, the paced run's schedule and the resident sizes read
from /proc. Its targets: ``test_bench_targets.py``; the bench on a stack:
``tests/system/ops/test_bench.py``."""

import asyncio
import os
import time

import pytest

from infra.config.settings import Settings
from ops.bench import BenchOptions
from ops.bench.kafka_tools import TOOLS_POM, parse_summary
from ops.bench.load import _open_loop, _Outcome, in_flight_cap, pacing_schedule
from ops.bench.memory import RssSampler, parse_vm_rss, rss_mb
from ops.bench.runner import _metrics_urls, paced_plan
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


def test_paced_orders_start_on_a_schedule_of_their_own() -> None:
    assert pacing_schedule(4, 2.0) == [0.0, 0.5, 1.0, 1.5]
    assert pacing_schedule(0, 5.0) == []
    for rate in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="positive"):
            pacing_schedule(3, rate)


def test_the_in_flight_cap_allows_ten_seconds_of_starts_or_twice_the_concurrency() -> None:
    assert in_flight_cap(8.17, concurrency=10) == 82
    assert in_flight_cap(2.0, concurrency=50) == 100


async def _timed_open_loop(
    count: int, rate: float, cap: int, saga_seconds: float
) -> tuple[list[float], float, list[float], int, int]:
    began = time.perf_counter()
    starts: list[float] = []

    async def saga(index: int) -> _Outcome:
        starts.append(time.perf_counter() - began)
        await asyncio.sleep(saga_seconds)
        return _Outcome("COMPLETED", latency_s=saga_seconds)

    outcomes, duration, delays, cap_waits, peak = await _open_loop(
        pacing_schedule(count, rate), cap, saga, lambda done, total: None
    )
    assert len(outcomes) == count
    return starts, duration, delays, cap_waits, peak


async def test_the_open_loop_does_not_wait_for_earlier_sagas() -> None:
    """Five sagas of 0.5 s each, started every 50 ms: all in flight together."""
    starts, duration, delays, cap_waits, peak = await _timed_open_loop(5, 20.0, 10, 0.5)
    assert starts == sorted(starts)
    assert starts[-1] < 0.4  # scheduled at 0.2 s; a closed loop of one would start it at 2 s
    assert duration < 1.2
    assert (cap_waits, peak) == (0, 5)
    assert len(delays) == 5 and max(delays) < 0.15


async def test_the_open_loop_holds_starts_back_at_the_cap_and_counts_them() -> None:
    """Two at most in flight: the third start waits for the first saga's end. The sagas last
    1.5 s, so that a busy machine's stall of the loop cannot end them before the last start is
    due (at 0.3 s they did, in one CI run)."""
    starts, _, delays, cap_waits, peak = await _timed_open_loop(4, 100.0, 2, 1.5)
    assert (cap_waits, peak) == (2, 2)
    assert starts[2] >= 1.49  # due at 20 ms, started when a saga ended
    assert delays[2] >= 1.4


def test_paced_plan_takes_its_rate_from_the_option_or_the_saturation() -> None:
    assert paced_plan(BenchOptions(), 11.67) is None  # no --rate: no paced phase
    auto = paced_plan(BenchOptions(rate="auto"), 11.67)
    assert auto is not None
    assert (auto.rate, auto.orders) == (8.17, 246)  # 70%, and 30 s of it
    assert "70% of the saturation's 11.67 sagas/s" in auto.source
    assert paced_plan(BenchOptions(rate="auto"), 0.0) is None  # nothing to take 70% of
    given = paced_plan(BenchOptions(rate=4.0, paced_orders=60), 11.67)
    assert given is not None and (given.rate, given.orders, given.source) == (4.0, 60, "--rate 4")
    assert BenchOptions(rate="auto", paced_orders=60).command_line() == (
        "saga bench --orders 200 --concurrency 50 --rate auto --paced-orders 60 --records 100000"
    )


STATUS = """Name:\tpython3.11
VmPeak:\t  812340 kB
VmSize:\t  812212 kB
VmHWM:\t  170000 kB
VmRSS:\t  165273 kB
RssAnon:\t  120000 kB
Threads:\t17
"""


def test_the_resident_size_is_read_from_proc_status() -> None:
    assert parse_vm_rss(STATUS) == pytest.approx(161.4, abs=0.05)
    # A kernel thread or a zombie has no VmRSS line; a line of another unit is not guessed.
    assert parse_vm_rss("Name:\tkthreadd\nState:\tS (sleeping)\n") is None
    assert parse_vm_rss("VmRSS:\t  165273 MB\n") is None
    own = rss_mb(os.getpid())
    assert own is not None and 10 < own < 4096
    assert rss_mb(2**22 + 1) is None  # above pid_max's ceiling: no such process


async def test_the_sampler_keeps_each_process_peak() -> None:
    ballast: list[bytes] = []
    async with RssSampler({"tests": os.getpid(), "gone": 2**22 + 1}, interval=0.05) as sampler:
        before = sampler.peaks().peak_mb["tests"]
        ballast.append(os.urandom(64 * 1024 * 1024))  # 64 MB, resident once written
        await asyncio.sleep(0.2)
    ballast.clear()
    peaks = sampler.peaks()
    assert "gone" not in peaks.peak_mb
    assert peaks.peak_mb["tests"] >= before + 60
    assert peaks.samples >= 3


def test_the_publish_histograms_are_scraped_from_every_copy_of_every_service() -> None:
    """On a stack with two copies of each service (the cluster topology) the second copies'
    ``/metrics`` are scraped too, on their own ports; the engines are not services."""
    settings = Settings(_env_file=None)
    recorded = ["kafka-1", "temporal", "payment", "payment-2", "orchestrator", "orchestrator-2"]

    urls = _metrics_urls(settings, dict.fromkeys(recorded, 1))

    assert sorted(urls) == ["orchestrator", "orchestrator-2", "payment", "payment-2"]
    second = settings.service_port("payment") + settings.instance_port_step
    assert urls["payment-2"] == f"http://{settings.api_host}:{second}/metrics"
    assert sorted(_metrics_urls(settings, {})) == [
        "inventory",
        "orchestrator",
        "payment",
        "shipping",
    ]
