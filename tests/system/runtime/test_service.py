"""A real service process against the session's Kafka broker and Temporal server."""

import os
import sys
import time
from pathlib import Path

import httpx
import pytest

from infra.engines.kafka_broker import KafkaBroker
from infra.engines.processes import reserve_ports, spawn, stop_process
from infra.engines.temporal_server import TemporalDevServer
from tests.support import REPO
from tests.support.stacks import SDK_METRICS_OFFSET


def _log(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else "(no log)"


@pytest.mark.parametrize("service", ["payment", "inventory", "shipping"])
def test_a_service_process_answers_health_and_metrics_and_stops_on_sigterm(
    service: str,
    kafka_broker: KafkaBroker,
    temporal_server: TemporalDevServer,
    tmp_path: Path,
) -> None:
    with reserve_ports() as ports:
        port = ports.port(SDK_METRICS_OFFSET)  # its Temporal SDK metrics listen there too
    env = {
        **os.environ,
        "SAGA_RUN_DIR": str(tmp_path / "run"),
        "SAGA_KAFKA_BOOTSTRAP_SERVERS": kafka_broker.bootstrap_servers,
        "SAGA_TEMPORAL_ADDRESS": temporal_server.address,
        "SAGA_TEMPORAL_NAMESPACE": temporal_server.namespace,
        f"SAGA_{service.upper()}_PORT": str(port),
        "SAGA_STARTUP_TIMEOUT_SECONDS": "30",
    }
    log = tmp_path / f"{service}.log"
    process, record = spawn(
        service, [sys.executable, "-m", f"workers.{service}"], log, env=env, cwd=REPO
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"{service} exited with {process.returncode}:\n{_log(log)}")
            try:
                health = httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    pytest.fail(f"{service} never answered /healthz:\n{_log(log)}")
                time.sleep(0.2)
        assert health.status_code == 200
        assert health.json() == {"service": service, "status": "ok"}

        metrics = httpx.get(f"{url}/metrics/", timeout=5)
        assert metrics.status_code == 200
        assert "outbox_backlog" in metrics.text
        assert "events_published_total" in metrics.text
        assert (tmp_path / "run" / f"{service}.db").exists()
    finally:
        stop_process(record)
    assert f"{service} service stopped" in _log(log), _log(log)
