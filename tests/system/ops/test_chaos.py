"""The chaos run in CI: 200 orders while every process of a stack is killed and restarted once
and one service is frozen past its activities' time-out; then no saga may be lost and the
audit must find nothing.

The stack is its own, with embedded Kafka and Temporal (file storage), because the run kills
them: the session's servers serve the other tests meanwhile.
"""

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config.settings import Settings
from infra.engines.processes import ProcessRecord, ProcessTable, free_port, start_ticks_of
from infra.engines.stack import Stack
from ops.chaos import KILL_TARGETS, ChaosError, ChaosOptions, render_text, run_chaos
from tests.system.conftest import own_stack

ORDERS = 200


@pytest.fixture
def chaos_stack(kafka_libs: Path, tmp_path: Path) -> Iterator[Settings]:
    """A whole stack of its own: Kafka and Temporal embedded, so that they can be killed."""
    stock = {"SKU-1001": 10_000, "SKU-1002": 10_000, "SKU-1003": 10_000}
    with own_stack(kafka_libs, tmp_path, stock, carrier_dispatch_delay_seconds=1) as settings:
        yield settings


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


@pytest.fixture
def temporal_in_memory(tmp_path: Path) -> Iterator[Settings]:
    """A stack whose recorded Temporal runs without ``--db-filename`` (started in memory) and
    answers on its port, while the settings now say ``file``."""
    settings = Settings(run_dir=tmp_path / "run", temporal_address=f"127.0.0.1:{free_port()}")
    in_memory = Stack(settings.model_copy(update={"temporal_storage": "memory"}))
    command = in_memory.command("temporal")  # what `saga up` started it with
    assert "--db-filename" not in command
    ProcessTable(settings.run_dir).put(
        ProcessRecord(
            name="temporal",
            pid=os.getpid(),
            start_ticks=start_ticks_of(os.getpid()) or 0,
            command=command,
            log=str(tmp_path / "temporal.log"),
        )
    )
    with socket.create_server(("127.0.0.1", settings.temporal_port)):
        yield settings


def test_a_temporal_started_in_memory_is_not_killed_by_a_chaos_run(
    temporal_in_memory: Settings,
) -> None:
    """Killing a Temporal that keeps its histories in memory loses running sagas by design of
    the set-up, so the chaos run refuses to start, and says how to restart it with storage."""
    stack = Stack(temporal_in_memory)
    assert stack.started_otherwise("temporal")
    options = ChaosOptions(orders=1, kills=("temporal",), pauses=())
    with pytest.raises(ChaosError, match=r"saga down && saga up"):
        asyncio.run(run_chaos(temporal_in_memory, options, say=print))

    in_memory = temporal_in_memory.model_copy(update={"temporal_storage": "memory"})
    assert not Stack(in_memory).started_otherwise("temporal")
    with pytest.raises(ChaosError, match=r"SAGA_TEMPORAL_STORAGE=file"):
        asyncio.run(run_chaos(in_memory, options, say=print))
