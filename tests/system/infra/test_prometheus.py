"""A real Prometheus (Debian's package) on the session stacks, as `saga up --monitoring` starts
it: it scrapes every process (both copies and the engines in the cluster topology), holds the
sagas' figures after a saga runs, and fires SagaStuck for a planted stuck saga (a refund that
keeps failing).

The test's Prometheus scrapes and evaluates every half second, and SagaStuck waits 3 s
(SAGA_ALERT_STUCK_MINUTES=0.05) instead of 10 minutes: the rules are the ones shipped, with
that setting rendered in. The session stack counts stuck sagas every 3 s (conftest.py).
"""

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import httpx
import pytest

from infra.config.settings import Settings
from infra.engines.processes import reserve_ports
from infra.engines.stack import SERVICES, Stack
from tests.support.orders_api import order_body, place, repair, saga_when

_T = TypeVar("_T")


async def _until(what: str, probe: Callable[[], Awaitable[_T | None]], wait_s: float = 60.0) -> _T:
    """``probe()``'s first answer that is not None, asked again every 0.3 s."""
    deadline = time.monotonic() + wait_s
    while True:
        found = await probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {wait_s} s")
        await asyncio.sleep(0.3)


@contextlib.asynccontextmanager
async def _monitoring(stack: Settings) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """``stack`` with monitoring on: its Prometheus started (and stopped at the end) as
    `saga up --monitoring` does, and a client of its HTTP API."""
    with reserve_ports() as ports:
        port = ports.port()
    settings = stack.model_copy(
        update={
            "monitoring": True,
            "prometheus_port": port,
            "prometheus_interval_seconds": 0.5,
            "alert_stuck_minutes": 0.05,
        }
    )
    monitored = Stack(settings, say=lambda _: None)
    try:
        await asyncio.to_thread(monitored.start_monitoring)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            yield settings, http
    finally:
        assert monitored.stop_monitoring(), "Prometheus was not running at the end"


@pytest.fixture
async def prometheus(stack: Settings) -> AsyncIterator[tuple[Settings, httpx.AsyncClient]]:
    """The session stack's Prometheus."""
    async with _monitoring(stack) as started:
        yield started


async def _all_up(http: httpx.AsyncClient, expected: set[tuple[str, str]]) -> None:
    """Wait until Prometheus scrapes exactly ``expected`` (job, process), every one up."""

    async def all_up() -> list[dict[str, Any]] | None:
        targets = (await _api(http, "targets"))["activeTargets"]
        seen = {(t["labels"]["job"], t["labels"]["process"]) for t in targets}
        healthy = all(t["health"] == "up" for t in targets)
        return targets if seen == expected and healthy else None

    try:
        await _until("every target up", all_up, wait_s=30)
    except AssertionError:
        targets = (await _api(http, "targets"))["activeTargets"]
        raise AssertionError(
            [(t["scrapeUrl"], t["health"], t["lastError"]) for t in targets]
        ) from None


async def _api(http: httpx.AsyncClient, path: str, **params: str) -> Any:
    response = await http.get(f"/api/v1/{path}", params=params)
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    return body["data"]


async def _value(http: httpx.AsyncClient, query: str) -> float | None:
    """The query's single value, or None while it has none."""
    result = (await _api(http, "query", query=query))["result"]
    return float(result[0]["value"][1]) if result else None


async def test_prometheus_scrapes_the_stack_and_fires_the_alert_of_a_stuck_saga(
    prometheus: tuple[Settings, httpx.AsyncClient], api: httpx.AsyncClient
) -> None:
    settings, http = prometheus

    # `saga ps` lists it, running, with its version.
    status = {s.name: s for s in Stack(settings, say=lambda _: None).status()}
    assert status["prometheus"].state == "running", status["prometheus"]
    assert status["prometheus"].version and status["prometheus"].version.startswith("Prometheus")

    # Every process of the stack, its own metrics and the Temporal SDK's: all up.
    processes = {*SERVICES, "api"}
    expected = {("saga-processes", p) for p in processes}
    expected |= {("saga-temporal-sdk", p) for p in processes} | {("prometheus", "prometheus")}
    await _all_up(http, expected)

    # A saga runs; its figures arrive through the scrape.
    async def started() -> float | None:
        return await _value(http, 'sum(sagas_started_total{process="orchestrator"})')

    before = await _until("sagas_started_total scraped", started)
    body = order_body("tok_visa", "DE", sku="SKU-1001", prefix="prom", customer_id="cust-prom")
    order_id = await place(api, body)
    await saga_when(api, order_id, lambda s: s["execution_status"] != "RUNNING")

    async def counted() -> float | None:
        value = await started()
        return value if value is not None and value >= before + 1 else None

    await _until("the saga counted by Prometheus", counted)
    assert await _value(http, "sum(events_published_total)"), "no events in the scrape"

    # A planted stuck saga: its refund keeps failing, so it is stuck in compensation.
    stuck_query = 'sagas_stuck{saga_status="COMPENSATING", process="orchestrator"}'
    stuck_before = await _until("sagas_stuck scraped", lambda: _value(http, stuck_query))
    planted = order_body(
        "tok_refundFail", "AQ", sku="SKU-1001", prefix="prom", customer_id="cust-prom"
    )
    stuck_id = await place(api, planted)
    try:
        await saga_when(
            api,
            stuck_id,
            lambda s: any(
                step["name"] == "charge_payment" and step["stuck"] for step in s["saga"]["steps"]
            ),
        )

        async def firing() -> dict[str, Any] | None:
            alerts = (await _api(http, "alerts"))["alerts"]
            return next(
                (
                    a
                    for a in alerts
                    if a["labels"]["alertname"] == "SagaStuck" and a["state"] == "firing"
                ),
                None,
            )

        async def counted_stuck() -> float | None:
            value = await _value(http, stuck_query)
            return value if value is not None and value >= stuck_before + 1 else None

        # The planted saga is counted (not only an earlier test's), and the alert fires.
        await _until("the planted saga in sagas_stuck", counted_stuck, wait_s=60)
        alert = await _until("SagaStuck firing", firing, wait_s=30)
        assert alert["labels"]["saga_status"] == "COMPENSATING"
        assert alert["labels"]["severity"] == "critical"
        assert "docs/operations.md#sagastuck" in alert["annotations"]["description"]
    finally:
        repaired = await repair(
            api, stuck_id, "resolve_manually", "charge_payment", reason="refunded by hand"
        )
        assert repaired.status_code == 200, repaired.text
    await saga_when(api, stuck_id, lambda s: s["execution_status"] != "RUNNING")


async def test_prometheus_scrapes_both_copies_and_the_engines_of_the_cluster_topology(
    cluster: Settings,
) -> None:
    """Every copy of every process, Temporal's full server, the registry: all up; the Kafka
    cluster's figures arrive from both orchestrator copies."""
    async with _monitoring(cluster) as (_, http):
        copies = [f"{s}{suffix}" for s in SERVICES for suffix in ("", "-2")]
        expected = {("saga-processes", p) for p in [*copies, "api"]}
        expected |= {("saga-temporal-sdk", p) for p in [*copies, "api"]}
        expected |= {
            ("temporal-server", "temporal"),
            ("schema-registry", "registry"),
            ("prometheus", "prometheus"),
        }
        await _all_up(http, expected)

        async def brokers() -> float | None:
            found = await _value(http, 'count(kafka_brokers{job="saga-processes"} == 3)')
            return found if found == 2 else None

        await _until("three brokers seen by both orchestrator copies", brokers)
