"""Incidents end to end on the session stack: a refund that keeps failing opens exactly one
incident, on Kafka and on the webhook (signature verified by the receiver); resolving it by
hand sends ``saga.incident_resolved`` and its webhook, once each."""

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from aiokafka import TopicPartition

from contracts.activities import saga_workflow_id
from contracts.codec import EVENT_TYPE_HEADER
from contracts.events.saga import SagaIncidentOpened, SagaIncidentResolved
from contracts.topics import TOPICS, topic_for_event_type
from infra.config.settings import Settings
from tests.support.bus import reader, records_to_end
from tests.support.orders_api import order_body, place, repair, until_ended
from tests.support.scrapes import metrics_url, scrape
from tests.support.webhook_receiver import ReceivedWebhook, WebhookReceiver

OPENED = SagaIncidentOpened.EVENT_TYPE
RESOLVED = SagaIncidentResolved.EVENT_TYPE
TOPIC = topic_for_event_type(OPENED)


async def _until_posted(
    receiver: WebhookReceiver, order_id: str, event_type: str, seconds: float = 90
) -> ReceivedWebhook:
    prefix = f"{saga_workflow_id(order_id)}/"
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = [
            r
            for r in receiver.requests
            if r.headers.get("saga-incident-id", "").startswith(prefix)
            and r.headers.get("saga-event-type") == event_type
        ]
        if found:
            return found[0]
        await asyncio.sleep(0.2)
    raise AssertionError(f"no {event_type} of {order_id} posted within {seconds} s")


async def _on_kafka(settings: Settings, order_id: str) -> Counter[str]:
    """The incident events of ``order_id`` on its topic, by event type."""
    spec = next(spec for spec in TOPICS if spec.name == TOPIC)
    partitions = [TopicPartition(TOPIC, p) for p in range(spec.partitions)]
    found: Counter[str] = Counter()
    async with reader(settings.kafka_bootstrap_servers, partitions) as consumer:
        async for record in records_to_end(consumer, partitions):
            event_type = dict(record.headers or ()).get(EVENT_TYPE_HEADER, b"").decode()
            if record.key == order_id.encode() and event_type.startswith("saga.incident_"):
                found[event_type] += 1
    return found


async def test_a_failing_refund_opens_one_incident_and_its_resolution_ends_it_once(
    api: httpx.AsyncClient, stack: Settings, incident_receiver: WebhookReceiver
) -> None:
    order_id = await place(api, order_body("tok_refundFail", country="AQ"))

    opened = await _until_posted(incident_receiver, order_id, OPENED)
    incident_id = opened.headers["saga-incident-id"]
    assert incident_id == f"{saga_workflow_id(order_id)}/charge_payment/1"
    assert opened.signed
    data: dict[str, Any] = opened.body["data"]
    assert opened.body["eventType"] == OPENED
    assert opened.body["correlationId"] == order_id
    assert (data["step"], data["compensating"], data["kind"]) == (
        "charge_payment",
        True,
        "compensation-failing",
    )
    assert "refuses refunds" in (data["last_error"] or "")
    # Other tests' sagas may hold incidents open too: this one is among them.
    async with httpx.AsyncClient() as http:
        metrics = await scrape(http, metrics_url(stack, "orchestrator"))
    assert metrics.value("saga_incidents_open") >= 1

    done = await repair(
        api, order_id, "resolve_manually", "charge_payment", reason="refunded by bank transfer"
    )
    assert done.status_code == 200, done.text
    resolved = await _until_posted(incident_receiver, order_id, RESOLVED)
    assert resolved.signed
    assert resolved.headers["saga-incident-id"] == incident_id
    assert resolved.body["data"]["resolution"].startswith("resolved-manually by ")
    assert (await until_ended(api, order_id))["saga"]["status"] == "CANCELLED"

    assert incident_receiver.delivered(incident_id) == {OPENED: 1, RESOLVED: 1}
    assert len(incident_receiver.of(incident_id)) == 2  # no retry, no second POST
    assert await _on_kafka(stack, order_id) == {OPENED: 1, RESOLVED: 1}
    events = [e["event_type"] for e in (await api.get(f"/sagas/{order_id}")).json()["events"]]
    assert events.count(OPENED) == events.count(RESOLVED) == 1
