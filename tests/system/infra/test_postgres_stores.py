"""The whole stack on PostgreSQL stores: two copies of every service sharing their service's
database, every saga path through the API, and the audit reading the records back."""

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from infra.config.settings import Settings, api_headers
from infra.engines.stack import SERVICES
from ops.audit import run_audit
from tests.support.orders_api import run_path
from tests.support.postgres import RunningPostgres, running_postgres
from tests.support.saga_paths import SAGA_PATHS
from tests.support.stacks import CARRIER_DELAY, DEFAULT_SKUS, own_stack
from workers.payment.queries import PaymentQueries


@pytest.fixture(scope="module")
def postgres() -> Iterator[RunningPostgres]:
    """A PostgreSQL server with a role and a database for each service."""
    with running_postgres(SERVICES) as running:
        yield running


@pytest.fixture(scope="module")
def pg_stack(
    kafka_libs: Path, postgres: RunningPostgres, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """A stack of its own (Kafka and Temporal embedded) whose services keep everything in
    PostgreSQL, two copies of each service and of the orchestrator's worker."""
    urls = {f"{service}_database_url": url for service, url in postgres.urls.items()}
    with own_stack(
        kafka_libs,
        tmp_path_factory.mktemp("pg-stack"),
        {sku: 1000 for sku in DEFAULT_SKUS},
        scale={service: 2 for service in SERVICES},
        carrier_dispatch_delay_seconds=CARRIER_DELAY,
        **urls,
    ) as settings:
        yield settings


@pytest.fixture
async def pg_api(pg_stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=pg_stack.api_url, timeout=30, headers=api_headers(pg_stack)
    ) as client:
        yield client


async def test_every_saga_path_ends_as_it_should_on_postgresql_stores(
    pg_stack: Settings, pg_api: httpx.AsyncClient, postgres: RunningPostgres
) -> None:
    """Each path ends in its status with its events; the services' records are in
    PostgreSQL (no SQLite file of theirs in the run directory), and the audit, reading them
    there, finds every order clean."""
    runs = asyncio.gather(*(run_path(pg_api, path) for path in SAGA_PATHS))
    sagas = await asyncio.wait_for(runs, timeout=180)
    for path, saga in zip(SAGA_PATHS, sagas, strict=True):
        assert saga["saga"]["status"] == path.status, (path.name, saga["saga"])
        assert [e["event_type"] for e in saga["events"]] == path.events, path.name

    assert sorted(pg_stack.run_dir.glob("*.db")) == []
    order_ids = {saga["order_id"] for saga in sagas}
    with PaymentQueries.open(postgres.urls["payment"]) as payments:
        paid = {row.order_id for row in payments.payments()}
    assert order_ids <= paid  # every path charges (or is declined) first

    report = await run_audit(pg_stack, orders=order_ids)
    assert report.violations == [], [
        f"{v.order_id} {v.kind}: {v.detail}" for v in report.violations
    ]
    assert report.checked_orders == len(order_ids)
    assert {source.name for source in report.sources if source.used} >= {
        "orders",
        "payment",
        "inventory",
        "shipping",
    }
    assert all("postgresql://" in s.detail for s in report.sources if s.name == "payment")
