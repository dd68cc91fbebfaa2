"""The stack's metrics as Prometheus would scrape them, before and after two sagas.

One saga completes (``tok_visa`` to DE) and one is undone at shipping (to AQ, which no
carrier serves: stock released, payment refunded, order cancelled), so every figure the
dashboard draws has moved at least once.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from infra.config.settings import Settings, api_headers
from infra.engines.stack import SERVICES

PROCESSES: tuple[str, ...] = (*SERVICES, "api")


@dataclass(frozen=True)
class Scrape:
    """One scrape of one endpoint: its metric families by name."""

    url: str
    families: dict[str, Any]

    def samples(self, name: str, **labels: str) -> list[Sample]:
        """The samples called ``name`` whose labels include ``labels``."""
        return [
            sample
            for family in self.families.values()
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]

    def value(self, name: str, **labels: str) -> float:
        """The sum of those samples (0 when there is none)."""
        return float(sum(sample.value for sample in self.samples(name, **labels)))


def metrics_url(settings: Settings, process: str) -> str:
    """A process's own ``/metrics``."""
    port = settings.api_port if process == "api" else settings.service_port(process)
    return f"http://{settings.api_host}:{port}/metrics/"


def sdk_metrics_url(settings: Settings, process: str) -> str:
    """Where a process's Temporal SDK exporter serves."""
    port = settings.sdk_metrics_port(process)
    assert port is not None, "the stack runs with the Temporal SDK metrics on"
    return f"http://127.0.0.1:{port}/metrics"


async def scrape(http: httpx.AsyncClient, url: str) -> Scrape:
    """Scrape ``url`` and parse it as Prometheus does (the text exposition format)."""
    response = await http.get(url)
    assert response.status_code == 200, f"{url}: {response.status_code} {response.text[:200]}"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    return Scrape(url, families)


@dataclass(frozen=True)
class SagaScrapes:
    """Each process's ``/metrics`` before and after the sagas, and its SDK metrics after."""

    before: dict[str, Scrape]
    after: dict[str, Scrape]
    sdk: dict[str, Scrape]
    completed_order: str
    cancelled_order: str

    def delta(self, process: str, name: str, **labels: str) -> float:
        """How much a sample of ``process`` grew during the sagas."""
        return self.after[process].value(name, **labels) - self.before[process].value(
            name, **labels
        )


def _order(order_id: str, country: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "cust-metrics",
        "items": [{"sku": "SKU-1002", "quantity": 1, "unit_price": 1200}],
        "currency": "EUR",
        "payment_token": "tok_visa",
        "shipping_address": {"country": country, "city": "Berlin"},
    }


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, *, within: float = 60.0, every: float = 0.5
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(every)


@pytest.fixture(scope="session")
async def saga_scrapes(stack: Settings) -> SagaScrapes:
    """Scrape every process, run two sagas to their end through the API, scrape again."""
    async with httpx.AsyncClient(timeout=15) as http:
        before = {p: await scrape(http, metrics_url(stack, p)) for p in PROCESSES}
        completed = f"metrics-ok-{uuid.uuid4().hex[:8]}"
        cancelled = f"metrics-aq-{uuid.uuid4().hex[:8]}"
        for order_id, country in ((completed, "DE"), (cancelled, "AQ")):
            placed = await http.post(
                f"{stack.api_url}/orders",
                json=_order(order_id, country),
                headers=api_headers(stack),
            )
            assert placed.status_code == 202, placed.text

        async def ended(order_id: str, last_event: str) -> bool:
            # The last event in the read model: the projector has consumed it.
            answer = await http.get(f"{stack.api_url}/sagas/{order_id}", headers=api_headers(stack))
            view = answer.json()
            return any(e["event_type"] == last_event for e in view.get("events", []))

        await _until(lambda: ended(completed, "order.completed.v1"), "the completed saga")
        await _until(lambda: ended(cancelled, "order.cancelled.v1"), "the cancelled saga")

        async def settled() -> bool:
            # The other consumer groups have seen the last events too, and the
            # orchestrator has looked at the cluster since the sagas published.
            orchestrator = await scrape(http, metrics_url(stack, "orchestrator"))
            consumed = [
                orchestrator.value("events_consumed_total", consumer_group=group)
                - before["orchestrator"].value("events_consumed_total", consumer_group=group)
                for group in ("audit", "notifications", "orchestrator-dispatch-bridge")
            ]
            seen = orchestrator.value("kafka_topic_messages_total", topic="order.events")
            return all(c > 0 for c in consumed) and seen >= 2

        await _until(settled, "the orchestrator's consumers and cluster figures", within=45)
        after = {p: await scrape(http, metrics_url(stack, p)) for p in PROCESSES}
        sdk = {p: await scrape(http, sdk_metrics_url(stack, p)) for p in PROCESSES}
    return SagaScrapes(before, after, sdk, completed, cancelled)
