"""The stack's metrics as Prometheus would scrape them, before and after two sagas.

One saga completes (``tok_visa`` to DE) and one is undone at shipping (to AQ, which no
carrier serves: stock released, payment refunded, order cancelled), so every figure the
dashboard draws has moved at least once.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import pytest

from infra.config.settings import Settings, api_headers
from tests.support.orders_api import order_body
from tests.support.scrapes import PROCESSES, SagaScrapes, metrics_url, scrape, sdk_metrics_url


def _order(order_id: str, country: str) -> dict[str, Any]:
    return order_body(
        country=country,
        order_id=order_id,
        customer_id="cust-metrics",
        sku="SKU-1002",
        unit_price=1200,
    )


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
