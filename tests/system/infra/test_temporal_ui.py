"""Temporal's Web UI server (built from ``github.com/temporalio/ui-server/v2``) in front of
Temporal's full server: it serves its page and assets, reads the configuration written for it
(the codec endpoint), lists a workflow of the full server by the saga's search attributes,
and reaches a frontend with mTLS on through the run's client certificate.

One PostgreSQL server for the module; two full servers on it (one plain, one with mTLS), each
with a UI of its own.
"""

import asyncio
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client
from temporalio.worker import Worker

from infra.config.settings import Settings
from infra.engines.postgres import PostgresServer
from infra.engines.processes import reserve_ports, stop_process
from infra.engines.temporal_build import (
    TemporalServerBuild,
    TemporalUiBuild,
    ensure_temporal_server,
    ensure_temporal_ui,
)
from infra.engines.temporal_full import (
    TemporalFullServer,
    TemporalPorts,
    ensure_frontend_tls,
    provision_temporal_database,
    stop_temporal_server,
)
from infra.engines.temporal_ui import TemporalUiServer
from tests.support.postgres import running_postgres
from tests.support.tagged_workflow import TaggedWorkflow, confirm_order

START_TIMEOUT = 90.0
CODEC = "http://127.0.0.1:8999/codec"

# `make install` (`saga fetch`) builds both before the tests; run alone on a fresh machine,
# the first test builds them (about 5 minutes on two cores).
pytestmark = pytest.mark.timeout(900)


@dataclass(frozen=True)
class WithUi:
    """A full server and the Web UI in front of it, both running."""

    server: TemporalFullServer
    ui: TemporalUiServer


@pytest.fixture(scope="module")
def builds() -> tuple[TemporalServerBuild, TemporalUiBuild]:
    """Temporal's server and its Web UI, from the cache (built the first time)."""
    s = Settings()
    server = ensure_temporal_server(
        s.temporal_server_cache_dir, s.temporal_server_version, go=s.go, toolchain=s.go_toolchain
    )
    ui = ensure_temporal_ui(
        s.temporal_ui_cache_dir, s.temporal_ui_version, go=s.go, toolchain=s.go_toolchain
    )
    return server, ui


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module, in a run directory its system user can enter."""
    with running_postgres() as running:
        yield running.server


@pytest.fixture(scope="module")
def plain(
    builds: tuple[TemporalServerBuild, TemporalUiBuild], postgres: PostgresServer
) -> Iterator[WithUi]:
    """The full server without TLS, and its UI with a codec endpoint."""
    yield from _with_ui(builds, postgres, "ui_plain", mtls=False, codec_endpoint=CODEC)


@pytest.fixture(scope="module")
def mtls(
    builds: tuple[TemporalServerBuild, TemporalUiBuild], postgres: PostgresServer
) -> Iterator[WithUi]:
    """The full server with mTLS on its frontend, and its UI presenting the run's
    certificate."""
    yield from _with_ui(builds, postgres, "ui_mtls", mtls=True)


def _with_ui(
    builds: tuple[TemporalServerBuild, TemporalUiBuild],
    postgres: PostgresServer,
    name: str,
    *,
    mtls: bool,
    codec_endpoint: str | None = None,
) -> Iterator[WithUi]:
    server_build, ui_build = builds
    run_dir = postgres.run_dir / name
    with reserve_ports() as ports:
        reserved, ui_port = TemporalPorts.reserve(ports), ports.port()
    tls = ensure_frontend_tls(run_dir / "temporal" / "tls") if mtls else None
    server = TemporalFullServer(
        build=server_build,
        run_dir=run_dir,
        ports=reserved,
        database=provision_temporal_database(
            postgres, role=name, database=name, visibility_database=f"{name}_visibility"
        ),
        tls=tls,
    )
    ui = TemporalUiServer(
        ui_build,
        run_dir,
        port=ui_port,
        temporal_address=server.address,
        codec_endpoint=codec_endpoint,
        tls=tls,
    )
    try:
        server_record = server.start(timeout=START_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        pytest.fail(f"Temporal's full server did not start: {exc}", pytrace=False)
    try:
        try:
            ui_record = ui.start(timeout=START_TIMEOUT)
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
            pytest.fail(f"Temporal's Web UI did not start: {exc}", pytrace=False)
        try:
            yield WithUi(server, ui)
        finally:
            stop_process(ui_record)
    finally:
        stop_temporal_server(server_record)


async def _run_tagged(client: Client, order_id: str) -> str:
    queue = f"web-ui-{uuid.uuid4()}"
    async with Worker(
        client, task_queue=queue, workflows=[TaggedWorkflow], activities=[confirm_order]
    ):
        return await client.execute_workflow(
            TaggedWorkflow.run, order_id, id=f"order-{order_id}", task_queue=queue
        )


async def _listed(ui: TemporalUiServer, query: str, *, within: float = 60.0) -> list[Any]:
    """The workflows the UI's API lists for ``query`` in the default namespace, once it lists
    any (visibility is written after the workflow's own state), or none after ``within``."""
    deadline = time.monotonic() + within
    async with httpx.AsyncClient(base_url=ui.url, timeout=10) as http:
        while True:
            answer = await http.get("/api/v1/namespaces/default/workflows", params={"query": query})
            assert answer.status_code == 200, answer.text
            executions: list[Any] = answer.json().get("executions", [])
            if executions or time.monotonic() > deadline:
                return executions
            await asyncio.sleep(0.5)


async def _client(running: WithUi) -> Client:
    connection = running.server.connection()
    return await Client.connect(
        running.server.address, namespace=running.server.namespace, tls=connection.tls or False
    )


async def test_the_ui_serves_its_page_and_assets(plain: WithUi) -> None:
    """`/` is the UI's page, and the scripts it names are served (the module carries them)."""
    async with httpx.AsyncClient(base_url=plain.ui.url, timeout=10) as http:
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:href|src|import\()\s*=?\s*"(/_app/[^"]+\.js)"', page.text)
        assert assets, page.text[:2000]
        script = await http.get(assets[0])
        assert script.status_code == 200
        assert "javascript" in script.headers["content-type"]


async def test_the_ui_reads_the_configuration_written_for_it(plain: WithUi) -> None:
    """The UI's settings API gives back the codec endpoint and namespace of its file."""
    async with httpx.AsyncClient(base_url=plain.ui.url, timeout=10) as http:
        settings = (await http.get("/api/v1/settings")).json()
    assert settings["Codec"]["Endpoint"] == CODEC
    assert settings["DefaultNamespace"] == "default"


async def test_the_ui_lists_a_workflow_of_the_full_server(plain: WithUi) -> None:
    """A workflow run on the full server is listed by the UI's API, found by its OrderId,
    completed; the page of the saga (the link `saga demo` prints) is served."""
    order_id = f"ui-{uuid.uuid4().hex[:8]}"
    assert await _run_tagged(await _client(plain), order_id) == f"confirmed {order_id}"
    executions = await _listed(plain.ui, f"OrderId = '{order_id}'")
    assert [e["execution"]["workflowId"] for e in executions] == [f"order-{order_id}"]
    assert executions[0]["status"] == "WORKFLOW_EXECUTION_STATUS_COMPLETED"
    async with httpx.AsyncClient(base_url=plain.ui.url, timeout=10) as http:
        page = await http.get(f"/namespaces/default/workflows/order-{order_id}")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")


async def test_the_ui_reaches_an_mtls_frontend_with_the_runs_certificate(mtls: WithUi) -> None:
    """With mTLS on the frontend, the UI (presenting the run's client certificate, checking
    the frontend's) lists a workflow of that server."""
    order_id = f"ui-mtls-{uuid.uuid4().hex[:8]}"
    assert await _run_tagged(await _client(mtls), order_id) == f"confirmed {order_id}"
    executions = await _listed(mtls.ui, f"OrderId = '{order_id}'")
    assert [e["execution"]["workflowId"] for e in executions] == [f"order-{order_id}"]
