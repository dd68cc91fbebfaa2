"""The incident webhook on the real broker, against a real HTTP receiver in the test process
that verifies every signature: each incident delivered once per state, signed; retried after
a 5xx, 408 or 429; dead-lettered with the status after its attempts, or at once after a
refusal (another 4xx); never POSTed twice for a redelivered or re-emitted event, nor after a
restart."""

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from contracts.codec import encode_event
from contracts.envelope import AnyEvent
from contracts.events.saga import (
    SagaIncidentOpened,
    SagaIncidentOpenedData,
    SagaIncidentResolved,
    SagaIncidentResolvedData,
)
from contracts.topics import topic_for_event_type
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.schema_registry import SchemaRegistryServer
from ops.dead_letters import DeadLetter, list_dead_letters
from orchestrator.incident_webhook import IncidentWebhook, WebhookConfig, webhook_body
from runtime import Database, RetryPolicy, SchemaRegistry, open_database
from tests.support.bus import bus_consumer, running
from tests.support.webhook_receiver import WebhookReceiver

TOPIC = topic_for_event_type(SagaIncidentOpened.EVENT_TYPE)
SECRET = "whsec-test-" + uuid.uuid4().hex
OPENED = SagaIncidentOpened.EVENT_TYPE
RESOLVED = SagaIncidentResolved.EVENT_TYPE


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver(SECRET)
    server.start()
    yield server
    server.stop()


def _config(receiver: WebhookReceiver) -> WebhookConfig:
    return WebhookConfig(
        url=receiver.url,
        secret=SECRET.encode(),
        retry=RetryPolicy(attempts=3, first_backoff=0.2),
        timeout=5.0,
    )


@asynccontextmanager
async def _webhook(
    bootstrap: str,
    registry: SchemaRegistryServer,
    db: Database,
    config: WebhookConfig,
) -> AsyncIterator[str]:
    """The webhook's consumer in a fresh group of its own (its id, to the block), reading the
    topic from its start: the session stack's records (framed: decoded through the registry)
    and other tests' too."""
    group = f"test-webhook-{uuid.uuid4()}"
    async with httpx.AsyncClient() as client, SchemaRegistry(registry.url) as schemas:
        consumer = bus_consumer(
            bootstrap,
            [TOPIC],
            IncidentWebhook(config, client).deliver,
            db,
            group_id=group,
            retry=config.retry,
            schemas=schemas,
        )
        async with running(consumer):
            yield group


def _store(tmp_path: Path) -> Database:
    return open_database(tmp_path / "incident-webhook.db", migrations=[IncidentWebhook.MIGRATIONS])


def _incident(order_id: str, episode: int = 1) -> dict[str, str]:
    workflow_id = f"order-{order_id}"
    return {
        "order_id": order_id,
        "incident_id": f"{workflow_id}/refund_payment/{episode}",
        "saga_type": "OrderSaga",
        "workflow_id": workflow_id,
        "step": "refund_payment",
    }


def _opened(order_id: str, episode: int = 1) -> SagaIncidentOpened:
    return SagaIncidentOpened(
        source="orchestrator",
        correlation_id=order_id,
        data=SagaIncidentOpenedData(
            **_incident(order_id, episode),
            compensating=True,
            kind="compensation-failing",
            attempts=5,
            last_error="RefundFailed: the issuer refused",
            opened_at="2026-12-06T02:14:31+00:00",
        ),
    )


def _resolved(order_id: str, episode: int = 1) -> SagaIncidentResolved:
    return SagaIncidentResolved(
        source="orchestrator",
        correlation_id=order_id,
        data=SagaIncidentResolvedData(
            **_incident(order_id, episode),
            resolution="resolved-manually by ops: refunded by bank transfer",
            resolved_at="2026-12-06T02:31:02+00:00",
        ),
    )


async def _produce(bootstrap: str, *events: AnyEvent) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            record = encode_event(event)
            await producer.send_and_wait(
                TOPIC, record.value, key=record.key, headers=record.headers
            )
    finally:
        await producer.stop()


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


async def _dead_letters(bootstrap: str, order_id: str) -> list[DeadLetter]:
    return [
        letter
        for letter in await list_dead_letters(bootstrap, [TOPIC])
        if letter.key == order_id.encode()
    ]


async def test_each_state_of_an_incident_is_posted_once_signed_with_the_event_as_its_body(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    order_id = f"hook-{uuid.uuid4()}"
    opened, resolved = _opened(order_id), _resolved(order_id)
    incident_id = opened.data.incident_id
    bootstrap = kafka_broker.bootstrap_servers
    await _produce(bootstrap, opened, resolved)

    async with _webhook(bootstrap, schema_registry, _store(tmp_path), _config(receiver)) as group:
        await _until(lambda: receiver.delivered(incident_id) == {OPENED: 1, RESOLVED: 1})

    first, second = receiver.of(incident_id)
    assert first.signed and second.signed
    assert first.headers["saga-event-type"] == OPENED
    assert first.headers["saga-event-id"] == str(opened.event_id)
    assert first.headers["content-type"] == "application/json"
    assert first.headers["saga-signature"].startswith("t=")
    assert first.body == opened.model_dump(mode="json", by_alias=True)
    assert first.body["data"]["incident_id"] == incident_id
    assert second.headers["saga-event-type"] == RESOLVED
    assert second.body["data"]["resolution"].startswith("resolved-manually by ops")
    assert webhook_body(opened).startswith(b'{"causationId":null,"correlationId":')
    # The topic also holds other tests' planted junk (unframed, or framed with ids no registry
    # knows), which every consumer must dead-letter: none of this group's dead letters is of
    # this order, whose events it read through the registry.
    letters = await list_dead_letters(bootstrap, [TOPIC])
    assert [
        letter.as_dict()
        for letter in letters
        if letter.header("dlq_consumer_group") == group and letter.key == order_id.encode()
    ] == []


async def test_a_5xx_408_or_429_is_retried_with_backoff_then_delivered_once(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    order_id = f"hook-{uuid.uuid4()}"
    opened = _opened(order_id)
    incident_id = opened.data.incident_id
    receiver.answer(incident_id, 500, 429)
    bootstrap = kafka_broker.bootstrap_servers
    await _produce(bootstrap, opened)

    async with _webhook(bootstrap, schema_registry, _store(tmp_path), _config(receiver)):
        await _until(lambda: receiver.delivered(incident_id) == {OPENED: 1})

    requests = receiver.of(incident_id)
    assert [r.status for r in requests] == [500, 429, 200]
    assert all(r.signed for r in requests)
    gaps = [b.at - a.at for a, b in itertools.pairwise(requests)]
    assert 0.2 <= gaps[0] < 0.6, gaps  # 0.2 s, then 0.4 s
    assert 0.4 <= gaps[1] < 1.0, gaps
    assert await _dead_letters(bootstrap, order_id) == []


async def test_after_its_attempts_or_a_refusal_the_event_is_dead_lettered_with_the_status(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    failing, refused = f"hook-{uuid.uuid4()}", f"hook-{uuid.uuid4()}"
    receiver.answer(_opened(failing).data.incident_id, 503, 503, 503)
    receiver.answer(_opened(refused).data.incident_id, 400)
    bootstrap = kafka_broker.bootstrap_servers
    await _produce(bootstrap, _opened(failing), _opened(refused))

    async with _webhook(bootstrap, schema_registry, _store(tmp_path), _config(receiver)):

        async def both_dead_lettered() -> bool:
            return bool(
                await _dead_letters(bootstrap, failing) and await _dead_letters(bootstrap, refused)
            )

        deadline = time.monotonic() + 60
        while not await both_dead_lettered():
            assert time.monotonic() < deadline, "not dead-lettered within 60 s"
            await asyncio.sleep(0.3)

    (gave_up,) = await _dead_letters(bootstrap, failing)
    info = gave_up.as_dict()
    assert info["reason"] == "webhook-http-503"
    assert info["attempts"] == "3"
    assert "answered HTTP 503" in str(info["error"])
    assert info["event_type"] == OPENED
    assert [r.status for r in receiver.of(_opened(failing).data.incident_id)] == [503] * 3

    (refusal,) = await _dead_letters(bootstrap, refused)
    info = refusal.as_dict()
    assert info["reason"] == "webhook-http-400-refused"
    assert info["attempts"] == "1"
    assert "not tried again" in str(info["error"])
    assert [r.status for r in receiver.of(_opened(refused).data.incident_id)] == [400]


async def test_a_redelivered_or_reemitted_event_is_not_posted_again_nor_after_a_restart(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    receiver: WebhookReceiver,
    tmp_path: Path,
) -> None:
    order_id = f"hook-{uuid.uuid4()}"
    opened = _opened(order_id)
    incident_id = opened.data.incident_id
    # The same record twice (a redelivery), then the same incident state under a new event
    # id (a re-emission), then the next episode: on one partition (one key), in this order.
    reemitted = opened.model_copy(update={"event_id": uuid.uuid4()})
    marker = _opened(order_id, episode=2)
    bootstrap = kafka_broker.bootstrap_servers
    await _produce(bootstrap, opened, opened, reemitted, marker)
    db = _store(tmp_path)

    async with _webhook(bootstrap, schema_registry, db, _config(receiver)):
        await _until(lambda: receiver.delivered(marker.data.incident_id) == {OPENED: 1})
    assert receiver.delivered(incident_id) == {OPENED: 1}
    assert len(receiver.of(incident_id)) == 1

    # A restart that reads the topic again from the start (a new group, the same store).
    restart_marker = _opened(order_id, episode=3)
    await _produce(bootstrap, restart_marker)
    async with _webhook(bootstrap, schema_registry, db, _config(receiver)):
        await _until(lambda: receiver.delivered(restart_marker.data.incident_id) == {OPENED: 1})
    assert len(receiver.of(incident_id)) == 1
    assert len(receiver.of(marker.data.incident_id)) == 1
