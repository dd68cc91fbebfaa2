"""Session fixtures that start the real engines (Apache Kafka in KRaft mode, Temporal's dev
server) and, on them, the whole stack of services.

Each starts on free loopback ports with a throw-away data directory and is stopped by its
process id at the end. A server that cannot start fails the tests that need it; nothing is
skipped.
"""

import asyncio
import json
import logging
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.config.api_tokens import Scope, token_sha256
from infra.config.settings import Settings
from infra.engines.kafka_broker import KafkaBroker, ensure_kafka_jars
from infra.engines.processes import reserve_ports, spawn, stop_process
from infra.engines.schema_registry import SchemaRegistryServer
from infra.engines.temporal_server import TemporalDevServer, find_temporal_cli
from runtime import wait_for_temporal
from tests.support.cli import without_settings
from tests.support.orders_api import api_client
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.stacks import (
    CARRIER_DELAY,
    DEFAULT_SKUS,
    E2E_SKUS,
    START_TIMEOUT,
    ClusterStack,
    cluster_stack,
    kafka_fixture,
    log_tail,
    own_broker,
    process_ports,
    running_broker,
    running_registry,
    scoped_token_name,
    stack_settings,
    stack_up,
)
from tests.support.webhook_receiver import WebhookReceiver

logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """Kafka's jars, from the cache (fetched from Maven Central the first time)."""
    settings = Settings()
    return ensure_kafka_jars(settings.kafka_cache_dir, settings.kafka_version, maven=settings.maven)


kafka_broker = kafka_fixture(running_broker, "kafka", scope="session")
"""The session's Apache Kafka broker."""


@pytest.fixture
def own_kafka_broker(kafka_libs: Path, tmp_path: Path) -> KafkaBroker:
    """A broker of the test's own, not started: for tests that stop and start it."""
    return own_broker(kafka_libs, tmp_path / "kafka")


@pytest.fixture(scope="session")
def schema_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SchemaRegistryServer]:
    """The session's Apicurio Registry, its schemas in an H2 file of its own."""
    with running_registry(tmp_path_factory.mktemp("registry")) as registry:
        yield registry


@pytest.fixture(scope="session")
def temporal_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TemporalDevServer]:
    """A real Temporal dev server (headless) on free ports, with the saga's search attributes."""
    data = tmp_path_factory.mktemp("temporal")
    with reserve_ports() as ports:
        port, http_port, metrics_port = ports.ports(3)
    server = TemporalDevServer(
        cli=find_temporal_cli(),
        port=port,
        ui_port=None,
        http_port=http_port,
        metrics_port=metrics_port,
        db_file=data / "temporal.db",
    )
    log = data / "temporal.log"
    _, record = spawn("temporal", server.command(), log)
    try:
        asyncio.run(wait_for_temporal(server.address, server.namespace, wait_seconds=START_TIMEOUT))
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        stop_process(record)
        pytest.fail(f"the Temporal dev server did not start: {exc}\n{log_tail(log)}", pytrace=False)
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


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    """An OTLP/HTTP trace endpoint in the test process, which the session's stack sends to."""
    receiver = OtlpReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="session")
def incident_receiver() -> Iterator[WebhookReceiver]:
    """An incident webhook endpoint in the test process, which the session's stack POSTs to;
    it verifies every signature with its secret."""
    receiver = WebhookReceiver(secrets.token_hex(32))
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
async def api(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the session stack's API, sending its development token."""
    async with api_client(stack) as client:
        yield client


@pytest.fixture
def env(stack: Settings) -> dict[str, str]:
    """The environment of a `saga` command pointed at the session's stack."""
    return {**without_settings(), **stack.as_env()}


@pytest.fixture(scope="session")
def scoped_tokens() -> dict[Scope, str]:
    """One token per scope, each with that scope alone, that the stack's API accepts
    (``SAGA_API_TOKENS``, named ``only-<scope>``) beside its development token."""
    return {scope: secrets.token_urlsafe(32) for scope in Scope}


@pytest.fixture(scope="session")
def stack(
    kafka_broker: KafkaBroker,
    temporal_server: TemporalDevServer,
    schema_registry: SchemaRegistryServer,
    otlp_receiver: OtlpReceiver,
    incident_receiver: WebhookReceiver,
    scoped_tokens: dict[Scope, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Settings]:
    """The three services, the orchestrator and the API, on the session's Kafka and Temporal.

    The API accepts the run directory's development token (every scope, what the project's
    own clients send) and the ``scoped_tokens``.

    Inventory holds the default SKUs and the ``E2E-*`` SKUs, which only the end-to-end test
    orders, so that it can account for every unit. Every process logs JSON lines to its log
    under ``<run_dir>/logs`` and sends its traces to ``otlp_receiver``; the orchestrator POSTs
    its incidents to ``incident_receiver``.
    """
    with reserve_ports() as ports:
        processes = process_ports(ports)
    settings = stack_settings(
        tmp_path_factory.mktemp("stack"),
        {sku: 1000 for sku in (*DEFAULT_SKUS, *E2E_SKUS)},
        kafka=kafka_broker.bootstrap_servers,
        temporal=temporal_server.address,
        registry=schema_registry.url,
        **processes,
        carrier_dispatch_delay_seconds=CARRIER_DELAY,
        startup_timeout_seconds=90,
        otlp_endpoint=otlp_receiver.endpoint,
        api_tokens=_token_entries(scoped_tokens),
        # A planted stuck saga shows in `sagas_stuck` within seconds, not a minute and a half
        # (tests/system/infra/test_prometheus.py).
        saga_watch_interval_seconds=3,
        saga_watch_min_age_seconds=10,
        incident_webhook_url=incident_receiver.url,
        incident_webhook_secret=incident_receiver.secret.decode(),
    )
    with stack_up(settings):
        yield settings


def _token_entries(scoped_tokens: dict[Scope, str]) -> str:
    """``SAGA_API_TOKENS`` accepting each of ``scoped_tokens`` with its scope alone."""
    return json.dumps(
        [
            {
                "name": scoped_token_name(scope),
                "sha256": token_sha256(token),
                "scopes": [scope.value],
            }
            for scope, token in scoped_tokens.items()
        ]
    )


@pytest.fixture(scope="session")
def cluster_stack_started(
    kafka_libs: Path, scoped_tokens: dict[Scope, str]
) -> Iterator[ClusterStack]:
    """The session's stack of the cluster topology, started with `saga up --topology cluster`:
    PostgreSQL, three Kafka nodes, Temporal's full server with mTLS on its frontend and its Web
    UI, two copies of every service and the API, payloads encrypted; the session stack's
    stock, carrier and tokens (so that the API tests run on it as on the embedded one)."""
    with cluster_stack(
        kafka_libs,
        {sku: 1000 for sku in (*DEFAULT_SKUS, *E2E_SKUS)},
        carrier_dispatch_delay_seconds=CARRIER_DELAY,
        api_tokens=_token_entries(scoped_tokens),
        temporal_mtls=True,
        payload_encryption=True,
    ) as started:
        yield started


@pytest.fixture(scope="session")
def cluster(cluster_stack_started: ClusterStack) -> Settings:
    """The settings of the session's cluster stack."""
    return cluster_stack_started.settings
