"""Temporal's full server (built from ``go.temporal.io/server``) on PostgreSQL: it runs
workflows, answers visibility queries by the saga's search attributes, keeps them across a
restart, and with mTLS on its frontend serves only clients that present the run's certificate.

One PostgreSQL server for the module; two Temporal servers on it (one plain, one with mTLS),
each with a role and two databases of its own.
"""

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from infra.config.settings import ConfigurationError, Settings
from infra.config.temporal import temporal_connection
from infra.engines.certificates import Leaf, make_certificates
from infra.engines.postgres import PostgresServer
from infra.engines.processes import ProcessRecord, reserve_ports
from infra.engines.temporal_build import TemporalServerBuild, ensure_temporal_server
from infra.engines.temporal_full import (
    TemporalFullServer,
    TemporalPorts,
    ensure_frontend_tls,
    provision_temporal_database,
    stop_temporal_server,
)
from runtime import wait_for_temporal
from tests.support.cli import refusal, run_saga, without_settings
from tests.support.postgres import running_postgres
from tests.support.tagged_workflow import TaggedWorkflow, confirm_order

START_TIMEOUT = 90.0

# `make install` (`saga fetch`) builds the server before the tests; run alone on a fresh
# machine, this module's first test builds it (about 5 minutes on two cores).
pytestmark = pytest.mark.timeout(900)


@dataclass
class Running:
    """A started server and its process (replaced when a test restarts it)."""

    server: TemporalFullServer
    record: ProcessRecord


@pytest.fixture(scope="module")
def build() -> TemporalServerBuild:
    """Temporal's server and SQL tool, from the cache (built the first time, ~5 minutes)."""
    settings = Settings()
    return ensure_temporal_server(
        settings.temporal_server_cache_dir,
        settings.temporal_server_version,
        go=settings.go,
        toolchain=settings.go_toolchain,
    )


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module, in a run directory its system user can enter."""
    with running_postgres() as running:
        yield running.server


def _start(server: TemporalFullServer) -> ProcessRecord:
    try:
        return server.start(timeout=START_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        pytest.fail(f"Temporal's full server did not start: {exc}", pytrace=False)


def _server(
    build: TemporalServerBuild, postgres: PostgresServer, name: str, *, mtls: bool
) -> TemporalFullServer:
    run_dir = postgres.run_dir / name
    with reserve_ports() as ports:
        reserved = TemporalPorts.reserve(ports)
    return TemporalFullServer(
        build=build,
        run_dir=run_dir,
        ports=reserved,
        database=provision_temporal_database(
            postgres, role=name, database=name, visibility_database=f"{name}_visibility"
        ),
        tls=ensure_frontend_tls(run_dir / "temporal" / "tls") if mtls else None,
    )


@pytest.fixture(scope="module")
def plain(build: TemporalServerBuild, postgres: PostgresServer) -> Iterator[Running]:
    """The full server without TLS, its state in the databases ``temporal_plain*``."""
    server = _server(build, postgres, "temporal_plain", mtls=False)
    running = Running(server, _start(server))
    yield running
    stop_temporal_server(running.record)


@pytest.fixture(scope="module")
def mtls(build: TemporalServerBuild, postgres: PostgresServer) -> Iterator[Running]:
    """The full server with mTLS on its frontend, its state in ``temporal_mtls*``."""
    server = _server(build, postgres, "temporal_mtls", mtls=True)
    running = Running(server, _start(server))
    yield running
    stop_temporal_server(running.record)


@pytest.fixture
async def plain_client(plain: Running) -> AsyncIterator[Client]:
    """A client of the plain server's namespace."""
    yield await wait_for_temporal(
        plain.server.address, plain.server.namespace, wait_seconds=START_TIMEOUT
    )


async def _run_tagged(client: Client, order_id: str) -> str:
    queue = f"full-server-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[TaggedWorkflow], activities=[confirm_order]
    ):
        return await client.execute_workflow(
            TaggedWorkflow.run, order_id, id=f"order-{order_id}", task_queue=queue
        )


async def _ids_where(client: Client, query: str, *, within: float = 60.0) -> list[str]:
    """The ids of the workflows ``query`` finds, once it finds any (visibility is written
    after the workflow's own state), or none after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        found = [execution.id async for execution in client.list_workflows(query)]
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.5)


async def test_a_workflow_runs_and_a_query_by_order_id_finds_it(plain_client: Client) -> None:
    """A workflow with one activity runs to its result, and a visibility query by the saga's
    OrderId and SagaStatus (keywords kept in PostgreSQL) finds exactly that workflow."""
    order_id = f"full-{uuid.uuid4().hex[:8]}"
    assert await _run_tagged(plain_client, order_id) == f"confirmed {order_id}"
    found = await _ids_where(plain_client, f"OrderId = '{order_id}' AND SagaStatus = 'COMPLETED'")
    assert found == [f"order-{order_id}"]


async def test_histories_stay_in_postgresql_across_a_restart(
    plain: Running, postgres: PostgresServer
) -> None:
    """After the server is stopped and started again (schemas already set up, migrations
    re-applied as a no-op), a workflow finished before is still there with its result."""
    client = await wait_for_temporal(
        plain.server.address, plain.server.namespace, wait_seconds=START_TIMEOUT
    )
    order_id = f"kept-{uuid.uuid4().hex[:8]}"
    await _run_tagged(client, order_id)
    stop_temporal_server(plain.record)
    plain.record = _start(plain.server)

    client = await wait_for_temporal(
        plain.server.address, plain.server.namespace, wait_seconds=START_TIMEOUT
    )
    handle = client.get_workflow_handle(f"order-{order_id}")
    assert await handle.result() == f"confirmed {order_id}"
    with psycopg.connect(plain.server.database.url("temporal_plain")) as conn:
        row = conn.execute("SELECT count(*) FROM executions").fetchone()
    assert row is not None and row[0] >= 1


def test_each_server_reaches_only_its_own_databases(plain: Running, mtls: Running) -> None:
    """The plain server's role may not connect to the mTLS server's databases."""
    theirs = mtls.server.database.visibility_database
    with pytest.raises(psycopg.OperationalError, match="permission denied"):
        psycopg.connect(plain.server.database.url(theirs), connect_timeout=5).close()


async def test_mtls_serves_a_client_with_the_runs_certificate(mtls: Running) -> None:
    """A client presenting the run's client certificate (through the settings every process
    reads) runs a workflow on the mTLS frontend."""
    env = mtls.server.client_settings()
    settings = Settings(
        temporal_address=env["SAGA_TEMPORAL_ADDRESS"],
        temporal_tls_ca_file=Path(env["SAGA_TEMPORAL_TLS_CA_FILE"]),
        temporal_tls_cert_file=Path(env["SAGA_TEMPORAL_TLS_CERT_FILE"]),
        temporal_tls_key_file=Path(env["SAGA_TEMPORAL_TLS_KEY_FILE"]),
    )
    client = await wait_for_temporal(
        temporal_connection(settings), mtls.server.namespace, wait_seconds=START_TIMEOUT
    )
    order_id = f"mtls-{uuid.uuid4().hex[:8]}"
    assert await _run_tagged(client, order_id) == f"confirmed {order_id}"


async def test_mtls_refuses_a_client_without_a_certificate(mtls: Running) -> None:
    """A client that trusts the server's CA but presents no certificate is refused by the
    handshake; the wait ends at once with a line naming the client certificate settings."""
    assert mtls.server.tls is not None
    no_cert = TLSConfig(server_root_ca_cert=mtls.server.tls.ca.read_bytes())
    # The server's alert (CertificateRequired), or, when the client had sent its first call
    # before the alert came, a connection closed under it (or cancelled, on busy cores).
    closed = r"CertificateRequired|broken pipe|connection closed|connection was not ready"
    with pytest.raises(RuntimeError, match=closed):
        client = await Client.connect(mtls.server.address, tls=no_cert)
        await client.count_workflows()

    settings = Settings(
        temporal_address=mtls.server.address, temporal_tls_ca_file=mtls.server.tls.ca
    )
    with pytest.raises(ConfigurationError) as refused:
        await wait_for_temporal(
            temporal_connection(settings), mtls.server.namespace, wait_seconds=START_TIMEOUT
        )
    assert "client certificate" in str(refused.value)
    assert "SAGA_TEMPORAL_TLS_CERT_FILE" in str(refused.value)


def test_a_wrong_ca_is_one_line_naming_the_setting(mtls: Running, tmp_path: Path) -> None:
    """`saga replay` pointed at the mTLS server with a CA that did not sign its certificate
    ends with one line naming SAGA_TEMPORAL_TLS_CA_FILE, exit 2, no traceback."""
    assert mtls.server.tls is not None
    other_ca, _ = make_certificates("another CA", [Leaf("nobody")])
    wrong = tmp_path / "other-ca.pem"
    wrong.write_bytes(other_ca)
    env = {
        **without_settings(),
        **mtls.server.client_settings(),
        "SAGA_TEMPORAL_TLS_CA_FILE": str(wrong),
        "SAGA_RUN_DIR": str(tmp_path),
    }
    line = refusal(run_saga(env, "replay", "--limit", "1", timeout=60), code=2)
    assert "not signed by a CA this client trusts" in line
    assert "SAGA_TEMPORAL_TLS_CA_FILE" in line
