"""`saga bench` on the session's stack with a handful of orders: its figures are consistent."""

import json
from pathlib import Path

import pytest

from ops.bench import BenchReport, render_markdown, render_text
from tests.support.cli import run_saga
from tests.support.stacks import CARRIER_DELAY

ORDERS = 5
RECORDS = 500
EVENTS_PER_SAGA = 6


def _ordered(latency: dict[str, float]) -> None:
    assert 0 < latency["p50_ms"] <= latency["p95_ms"] <= latency["p99_ms"] <= latency["max_ms"]


def test_bench_reports_consistent_figures(env: dict[str, str], tmp_path: Path) -> None:
    arguments = [
        "bench",
        "--orders", str(ORDERS), "--concurrency", str(ORDERS),
        "--rate", "auto", "--paced-orders", str(ORDERS),
        "--bare-dispatch-wait", "0.2",
        "--records", str(RECORDS), "--skip-kafka-tools",
        "--report-dir", str(tmp_path), "--json",
    ]  # fmt: skip
    bench = run_saga(env, *arguments, timeout=120)
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

    paced = report["paced"]
    assert "70% of the saturation's" in paced["rate_source"]
    assert paced["pacing"]["rate_per_s"] == pytest.approx(0.7 * sagas["sagas_per_s"], abs=0.01)
    assert paced["pacing"]["cap_waits"] == 0
    assert (paced["load"]["requested"], paced["load"]["completed"]) == (ORDERS, ORDERS)
    _ordered(paced["load"]["latency"])
    # The paced phase's consumer counts the paced orders' events alone.
    assert paced["delivery"]["events"] == ORDERS * EVENTS_PER_SAGA
    _ordered(paced["delivery"]["end_to_end"])
    assert paced["publish"]["events"] >= ORDERS * EVENTS_PER_SAGA
    peaks = report["memory"]["peak_mb"]
    assert {"orchestrator", "payment", "inventory", "shipping", "api"} <= set(peaks)
    assert all(20 < mb < 2048 for mb in peaks.values())

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
    assert len(measured) == 11
    # Temporal is the session's own (no process of the stack's), Kafka's tool was skipped.
    assert {name for name, met in measured.items() if met is None} == {
        "Temporal's CPU per saga vs bare workflow",
        "one relay vs Kafka's ProducerPerformance (events/s)",
    }

    json_path, markdown_path = (
        Path(line.removeprefix("report: ")) for line in bench.stderr.splitlines()[-2:]
    )
    written = BenchReport.model_validate_json(json_path.read_text())
    assert written.model_dump(mode="json") == report
    assert markdown_path.read_text() == render_markdown(written)
    assert "saga throughput vs bare workflow" in render_text(written)
    assert "order saga, paced at" in render_text(written)
