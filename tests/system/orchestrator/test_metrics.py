"""The saga metrics: why a saga was cancelled, and the stuck sagas counted from Temporal."""

from datetime import timedelta
from typing import Any

import httpx
from prometheus_client import CollectorRegistry
from temporalio.client import Client

from infra.config.settings import Settings
from orchestrator.metrics import SagaMetrics, SagaWatch
from tests.support.orders_api import order_body, place, repair, saga_when
from tests.support.scrapes import metrics_url, scrape


def _order(token: str, country: str) -> dict[str, Any]:
    return order_body(
        token, country, sku="SKU-1001", prefix="metrics", customer_id="cust-metrics", unit_price=900
    )


async def test_a_customer_cancel_is_counted_as_customer(
    api: httpx.AsyncClient, stack: Settings
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        before = await scrape(http, metrics_url(stack, "orchestrator"))
        order_id = await place(api, _order("tok_visa", "DE"))
        await saga_when(
            api,
            order_id,
            lambda s: any(
                step["name"] == "schedule_shipment" and step["state"] == "done"
                for step in s["saga"]["steps"]
            ),
        )
        cancel = await api.post(
            f"/sagas/{order_id}/cancel", json={"reason": "changed my mind", "requested_by": "me"}
        )
        assert cancel.status_code == 202, cancel.text
        saga = await saga_when(api, order_id, lambda s: s["execution_status"] != "RUNNING")
        assert saga["saga"]["status"] == "CANCELLED"
        after = await scrape(http, metrics_url(stack, "orchestrator"))
    grew = after.value("sagas_cancelled_total", reason="customer") - before.value(
        "sagas_cancelled_total", reason="customer"
    )
    assert grew == 1
    assert after.value("sagas_cancelled_total", reason="await_dispatch") == before.value(
        "sagas_cancelled_total", reason="await_dispatch"
    )


async def test_the_saga_watch_counts_a_saga_flagged_stuck(
    api: httpx.AsyncClient, temporal_client: Client
) -> None:
    """A refund that keeps failing flags the saga stuck in compensation; the watch sees it."""
    registry = CollectorRegistry()
    metrics = SagaMetrics(registry)

    def gauge(name: str) -> float:
        return registry.get_sample_value(name, {"saga_status": "COMPENSATING"}) or 0.0

    watch = SagaWatch(temporal_client, metrics, min_age=timedelta(0))
    order_id = await place(api, _order("tok_refundFail", "AQ"))
    try:
        await saga_when(
            api,
            order_id,
            lambda s: any(
                step["name"] == "charge_payment" and step["stuck"] for step in s["saga"]["steps"]
            ),
        )
        await watch.refresh()
        assert gauge("sagas_stuck") >= 1
        assert gauge("sagas_in_flight") >= 1
    finally:
        repaired = await repair(
            api, order_id, "resolve_manually", "charge_payment", reason="refunded by hand"
        )
        assert repaired.status_code == 200, repaired.text
    await saga_when(api, order_id, lambda s: s["execution_status"] != "RUNNING")
    await watch.refresh()
    # Other tests' sagas may be stuck too, but this one no longer is.
    assert gauge("sagas_stuck") < 1 or await _still_stuck_elsewhere(api, order_id)


async def _still_stuck_elsewhere(api: httpx.AsyncClient, order_id: str) -> bool:
    listed = (await api.get("/sagas/stuck", params={"older_than_seconds": 0})).json()
    flagged = [s for s in listed if s["flagged_stuck"]]
    return bool(flagged) and all(s["order_id"] != order_id for s in flagged)
