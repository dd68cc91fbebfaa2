"""`saga projections rebuild` without Kafka: it names the address it tried and writes nothing."""

import asyncio
from pathlib import Path

from infra.engines.processes import free_port
from tests.support.cli import run_saga, without_settings


def _cli_env(tmp_path: Path, bootstrap: str) -> dict[str, str]:
    return {
        **without_settings(),
        "SAGA_RUN_DIR": str(tmp_path / "run"),
        "SAGA_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
    }


async def test_saga_projections_rebuild_names_an_unreachable_kafka(tmp_path: Path) -> None:
    """Without Kafka, the command says where it looked and what to do, and writes nothing."""
    address = f"127.0.0.1:{free_port()}"
    env = _cli_env(tmp_path, address)

    result = await asyncio.to_thread(run_saga, env, "projections", "rebuild")

    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.startswith(f"saga: Kafka at {address} did not answer"), result.stderr
    assert "`saga up`" in result.stderr
    assert not (tmp_path / "run" / "orchestrator.db").exists()
