"""The chaos run in CI: 200 orders while every process of a stack is killed and restarted once
and one service is frozen past its activities' time-out; then no saga may be lost and the
audit must find nothing.

The stack is its own, with embedded Kafka and Temporal (file storage), because the run kills
them: the session's servers serve the other tests meanwhile.
"""

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.processes import free_port
from infra.settings import Settings
from infra.stack import Stack
from orchestrator.chaos import KILL_TARGETS, ChaosOptions, render_text, run_chaos
from tests.conftest import process_port

ORDERS = 200


def _engine_port() -> int:
    """A free port whose neighbours at +10 and +11 (Temporal's HTTP API and metrics) are free."""
    from infra.processes import port_in_use

    while True:
        port = free_port()
        if not any(port_in_use("127.0.0.1", port + offset) for offset in (10, 11)):
            return port


@pytest.fixture
def chaos_stack(kafka_libs: Path, tmp_path: Path) -> Iterator[Settings]:
    """A whole stack of its own: Kafka and Temporal embedded, so that they can be killed."""
    seed = tmp_path / "seed.json"
    seed.write_text(json.dumps({"SKU-1001": 10_000, "SKU-1002": 10_000, "SKU-1003": 10_000}))
    settings = Settings(
        run_dir=tmp_path / "run",
        inventory_seed_file=seed,
        kafka_embedded=True,
        kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
        kafka_controller_port=free_port(),
        kafka_cache_dir=kafka_libs.parent.parent,
        temporal_embedded=True,
        temporal_address=f"127.0.0.1:{_engine_port()}",
        temporal_ui_port=free_port(),
        api_port=process_port(),
        payment_port=process_port(),
        inventory_port=process_port(),
        shipping_port=process_port(),
        orchestrator_port=process_port(),
        carrier_dispatch_delay_seconds=1,
        startup_timeout_seconds=120,
    )
    stack = Stack(settings, say=lambda _: None)
    try:
        stack.up()
        yield settings
    finally:
        stack.down()


@pytest.mark.timeout(1200)
def test_no_saga_is_lost_and_the_books_balance_when_every_process_is_killed(
    chaos_stack: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    report = asyncio.run(
        run_chaos(chaos_stack, ChaosOptions(orders=ORDERS, concurrency=20, seed=7), say=print)
    )
    with capsys.disabled():  # the run's figures belong in CI's output, passed or not
        print("\n" + render_text(report))

    struck = {(fault.kind.value, fault.target) for fault in report.faults}
    assert {target for kind, target in struck if kind == "kill"} == set(KILL_TARGETS)
    assert any(kind == "pause" for kind, _ in struck)
    assert report.orders.accepted == ORDERS
    assert report.orders.lost == 0, report.orders.lost_orders
    assert report.orders.completed + report.orders.cancelled == ORDERS
    assert report.audit.checked_orders == ORDERS
    assert report.audit.violations == []
    assert report.events.outbox_pending == 0
    assert report.passed, report.problems
