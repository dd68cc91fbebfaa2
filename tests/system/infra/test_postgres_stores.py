"""The services' stores on PostgreSQL, as the cluster topology keeps them: two copies of every
service sharing their service's database, every saga path through the API, and the audit
reading the records back from PostgreSQL."""

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from infra.config.databases import database_url
from infra.config.settings import Settings
from ops.audit import run_audit
from tests.support.orders_api import api_client, run_path
from tests.support.saga_paths import SAGA_PATHS
from workers.payment.queries import PaymentQueries


@pytest.fixture
async def cluster_api(cluster: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(cluster) as client:
        yield client


async def test_every_saga_path_is_kept_in_postgresql_and_audited_clean_there(
    cluster: Settings, cluster_api: httpx.AsyncClient
) -> None:
    """Each path ends in its status with its events; the services' records are in
    PostgreSQL (no SQLite file of theirs in the run directory), and the audit, reading them
    there, finds every order clean."""
    runs = asyncio.gather(*(run_path(cluster_api, path) for path in SAGA_PATHS))
    sagas = await asyncio.wait_for(runs, timeout=180)
    for path, saga in zip(SAGA_PATHS, sagas, strict=True):
        assert saga["saga"]["status"] == path.status, (path.name, saga["saga"])
        assert [e["event_type"] for e in saga["events"]] == path.events, path.name

    assert sorted(cluster.run_dir.glob("*.db")) == []
    payment_url = database_url(cluster, "payment")
    assert payment_url is not None and payment_url.startswith("postgresql://")
    order_ids = {saga["order_id"] for saga in sagas}
    with PaymentQueries.open(payment_url) as payments:
        paid = {row.order_id for row in payments.payments()}
    assert order_ids <= paid  # every path charges (or is declined) first

    report = await run_audit(cluster, orders=order_ids)
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
