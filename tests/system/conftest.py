"""Session fixtures that start the real engines (Apache Kafka in KRaft mode, Temporal's dev
server) and, on them, the whole stack of services.

Each starts on free loopback ports with a throw-away data directory and is stopped by its
process id at the end. A server that cannot start fails the tests that need it; nothing is
skipped.
"""

import asyncio
import contextlib
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from contracts.topics import all_topics
from infra.config.api_tokens import Scope, token_sha256
from infra.config.settings import Settings, api_headers
from infra.engines.kafka_broker import KafkaBroker, apply_topic_catalog, ensure_kafka_jars
from infra.engines.processes import ProcessRecord, free_port, port_in_use, spawn, stop_process
from infra.engines.stack import Stack
from infra.engines.temporal_server import TemporalDevServer, find_temporal_cli
from runtime import wait_for_kafka, wait_for_temporal
from tests.support.otlp_receiver import OtlpReceiver

logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

_START_TIMEOUT = 90.0


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """Kafka's jars, from the cache (fetched from Maven Central the first time)."""
    settings = Settings()
    return ensure_kafka_jars(settings.kafka_cache_dir, settings.kafka_version, maven=settings.maven)


def start_broker(broker: KafkaBroker) -> ProcessRecord:
    """Start ``broker`` (formatting its storage the first time) and apply the topic catalog.

    Fails the calling test, with the broker's log, if the broker does not come up.
    """
    broker.format_storage()
    log = broker.data_dir / "broker.log"
    _, record = spawn("kafka", broker.command(), log)
    try:
        asyncio.run(wait_for_kafka(broker.bootstrap_servers, wait_seconds=_START_TIMEOUT))
        asyncio.run(apply_topic_catalog(broker.bootstrap_servers, all_topics()))
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        stop_process(record)
        pytest.fail(f"the Kafka broker did not start: {exc}\n{_log_tail(log)}", pytrace=False)
    return record


@contextlib.contextmanager
def running_broker(libs: Path, data_dir: Path) -> Iterator[KafkaBroker]:
    """A real Apache Kafka broker on free ports, with the topic catalog, stopped at the end."""
    broker = KafkaBroker(
        libs=libs, data_dir=data_dir, port=free_port(), controller_port=free_port()
    )
    record = start_broker(broker)
    try:
        yield broker
    finally:
        stop_process(record)


@pytest.fixture(scope="session")
def kafka_broker(
    kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[KafkaBroker]:
    """The session's Apache Kafka broker."""
    with running_broker(kafka_libs, tmp_path_factory.mktemp("kafka")) as broker:
        yield broker


@pytest.fixture
def own_kafka_broker(kafka_libs: Path, tmp_path: Path) -> KafkaBroker:
    """A broker of the test's own, not started: for tests that stop and start it."""
    return KafkaBroker(
        libs=kafka_libs, data_dir=tmp_path / "kafka", port=free_port(), controller_port=free_port()
    )


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A real Temporal dev server (headless) on free ports, with the saga's search attributes."""
    data = tmp_path_factory.mktemp("temporal")
    server = TemporalDevServer(
        cli=find_temporal_cli(),
        port=free_port(),
        ui_port=None,
        http_port=free_port(),
        metrics_port=free_port(),
        db_file=data / "temporal.db",
    )
    log = data / "temporal.log"
    _, record = spawn("temporal", server.command(), log)
    try:
        asyncio.run(
            wait_for_temporal(server.address, server.namespace, wait_seconds=_START_TIMEOUT)
        )
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        stop_process(record)
        pytest.fail(
            f"the Temporal dev server did not start: {exc}\n{_log_tail(log)}", pytrace=False
        )
    yield server
    stop_process(record)


@pytest.fixture(scope="session")
async def temporal_client(temporal_server: TemporalDevServer) -> AsyncIterator[Client]:
    """A client of the session's Temporal server, with the pydantic data converter."""
    yield await Client.connect(
        temporal_server.address,
        namespace=temporal_server.namespace,
        data_converter=pydantic_data_converter,
    )


# The carrier of the stack waits longer than the short dispatch deadline of the deadline
# paths, and long enough for the customer-cancel paths to cancel before it dispatches.
CARRIER_DELAY = 4.0
DEFAULT_SKUS = ("SKU-1001", "SKU-1002", "SKU-1003")
E2E_SKUS = ("E2E-A", "E2E-B")


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP trace endpoint in the test process, which the session's stack sends to."""
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


def process_port() -> int:
    """A free port for a stack process whose Temporal SDK metrics port (this port plus the
    default ``sdk_metrics_port_offset``) is free too."""
    offset: int = Settings.model_fields["sdk_metrics_port_offset"].default
    while True:
        port = free_port()
        if port + offset <= 65535 and not port_in_use("127.0.0.1", port + offset):
            return port


@contextlib.contextmanager
def stack_up(settings: Settings) -> Iterator[Stack]:
    """``saga up`` for ``settings``, and ``saga down`` at the end, whatever happened."""
    stack = Stack(settings, say=lambda _: None)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


def engine_port() -> int:
    """A free port whose neighbours at +10 and +11 (Temporal's HTTP API and metrics) are free."""
    while True:
        port = free_port()
        if not any(port_in_use("127.0.0.1", port + offset) for offset in (10, 11)):
            return port


@contextlib.contextmanager
def own_stack(
    kafka_libs: Path, directory: Path, stock: dict[str, int], **overrides: Any
) -> Iterator[Settings]:
    """A whole stack of a test's own, Kafka and Temporal embedded (so that a test may kill or
    secure them), on free loopback ports, with ``stock`` in the inventory; down at the end."""
    seed = directory / "seed.json"
    seed.write_text(json.dumps(stock))
    settings = Settings(
        **{
            "run_dir": directory / "run",
            "inventory_seed_file": seed,
            "kafka_embedded": True,
            "kafka_bootstrap_servers": f"127.0.0.1:{free_port()}",
            "kafka_controller_port": free_port(),
            "kafka_cache_dir": kafka_libs.parent.parent,
            "temporal_embedded": True,
            "temporal_address": f"127.0.0.1:{engine_port()}",
            "temporal_ui_port": free_port(),
            "api_port": process_port(),
            "payment_port": process_port(),
            "inventory_port": process_port(),
            "shipping_port": process_port(),
            "orchestrator_port": process_port(),
            "startup_timeout_seconds": 120,
            **overrides,
        }
    )
    with stack_up(settings):
        yield settings


@pytest.fixture
async def api(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session stack's API, sending its development token."""
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=api_headers(stack)
    ) as client:
        yield client


@pytest.fixture(scope="session")
def scoped_tokens() -> dict[Scope, str]:
    """One token per scope, each with that scope alone, that the stack's API accepts
    (``SAGA_API_TOKENS``, named ``only-<scope>``) beside its development token."""
    return {scope: secrets.token_urlsafe(32) for scope in Scope}


def scoped_token_name(scope: Scope) -> str:
    """The name of the token of ``scoped_tokens`` that has ``scope`` alone."""
    return "only-" + scope.value.replace(":", "-")


@pytest.fixture(scope="session")
def stack(
    kafka_broker: KafkaBroker,
    temporal_server: TemporalDevServer,
    otlp_receiver: OtlpReceiver,
    scoped_tokens: dict[Scope, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """The three services, the orchestrator and the API, on the session's Kafka and Temporal.

    The API accepts the run directory's development token (every scope, what the project's
    own clients send) and the ``scoped_tokens``.

    Inventory holds the default SKUs and the ``E2E-*`` SKUs, which only the end-to-end test
    orders, so that it can account for every unit. Every process logs JSON lines to its log
    under ``<run_dir>/logs`` and sends its traces to ``otlp_receiver``.
    """
    run_dir = tmp_path_factory.mktemp("stack")
    seed = run_dir / "seed.json"
    seed.write_text(json.dumps({sku: 1000 for sku in (*DEFAULT_SKUS, *E2E_SKUS)}))
    settings = Settings(
        run_dir=run_dir,
        inventory_seed_file=seed,
        kafka_embedded=False,
        kafka_bootstrap_servers=kafka_broker.bootstrap_servers,
        temporal_embedded=False,
        temporal_address=temporal_server.address,
        api_port=process_port(),
        payment_port=process_port(),
        inventory_port=process_port(),
        shipping_port=process_port(),
        orchestrator_port=process_port(),
        carrier_dispatch_delay_seconds=CARRIER_DELAY,
        startup_timeout_seconds=90,
        log_format="json",
        log_level="INFO",
        otlp_endpoint=otlp_receiver.endpoint,
        api_tokens=json.dumps(
            [
                {
                    "name": scoped_token_name(scope),
                    "sha256": token_sha256(token),
                    "scopes": [scope.value],
                }
                for scope, token in scoped_tokens.items()
            ]
        ),
    )
    with stack_up(settings):
        yield settings
