"""A chaos run leaves alone a Temporal that `saga up` started in memory (killing it would lose
every saga); the chaos run itself is in ``tests/system/ops/test_chaos.py``."""

import asyncio
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from infra.config.settings import Settings
from infra.engines.processes import ProcessRecord, ProcessTable, free_port, start_ticks_of
from infra.engines.stack import Stack
from ops.chaos import ChaosError, ChaosOptions, run_chaos


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
