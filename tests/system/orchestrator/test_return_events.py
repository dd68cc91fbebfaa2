"""Every consumer of the orchestrator takes a return's events in stride, on the real broker:
the projector keeps them in their order's timeline, the audit log appends them, the
notifications and the saga metrics pass them by, and none is dead-lettered."""

import asyncio
import time
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack

from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from contracts.codec import encode_event
from contracts.envelope import AnyEvent
from contracts.topics import TOPICS, topic_for_event_type
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.schema_registry import SchemaRegistryServer
from ops.dead_letters import list_dead_letters
from orchestrator.choreography import AuditLog, Notifications
from orchestrator.metrics import COMPENSATED_STEP, SagaMetrics
from orchestrator.orders import OrderBook
from orchestrator.timeline import Timeline
from runtime import Database, SchemaRegistry, Where, open_database
from tests.support.bus import bus_consumer, running
from tests.support.samples import return_events

_DOMAIN_TOPICS = [spec.name for spec in TOPICS]


def _of_order(event: AnyEvent, order_id: str) -> AnyEvent:
    data = event.data.model_copy(update={"order_id": order_id})
    return event.model_copy(
        update={"event_id": uuid.uuid4(), "correlation_id": order_id, "data": data}
    )


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"condition not met within {seconds} s"
        await asyncio.sleep(0.2)


async def test_the_consumers_keep_or_pass_every_return_event_and_dead_letter_none(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    database_at: Callable[[str], Where],
) -> None:
    bootstrap = kafka_broker.bootstrap_servers
    order_id = f"o-returns-{uuid.uuid4().hex[:8]}"
    events = [_of_order(event, order_id) for event in return_events()]
    projector_db = open_database(database_at("projector"), migrations=[OrderBook.MIGRATIONS])
    audit_db = open_database(database_at("audit"), migrations=[AuditLog.MIGRATIONS])
    notifications_db = open_database(
        database_at("notifications"), migrations=[Notifications.MIGRATIONS]
    )
    timeline, audit = Timeline(projector_db), AuditLog(audit_db)
    notifications = Notifications(notifications_db)
    metrics = SagaMetrics(CollectorRegistry())

    async def project(event: AnyEvent, db: Database) -> None:
        await timeline.project(event, db)
        # The topics hold other tests' orders too (their refunds are compensations).
        if event.correlation_id == order_id:
            metrics.observe_event(event)

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for event in events:
            encoded = encode_event(event)
            await producer.send_and_wait(
                topic_for_event_type(event.event_type),
                encoded.value,
                key=encoded.key,
                headers=encoded.headers,
            )
    finally:
        await producer.stop()

    async with AsyncExitStack() as stack:
        # The session stack's records on these topics are framed: read them as it does.
        schemas = await stack.enter_async_context(SchemaRegistry(schema_registry.url))
        for handler, db in (
            (project, projector_db),
            (audit.append, audit_db),
            (notifications.notify, notifications_db),
        ):
            await stack.enter_async_context(
                running(bus_consumer(bootstrap, _DOMAIN_TOPICS, handler, db, schemas=schemas))
            )
        await _until(lambda: len(timeline.events_for(order_id)) == len(events))
        await _until(lambda: len(audit.event_types_for(order_id)) == len(events))

    assert {entry.event_type for _, entry in timeline.events_for(order_id)} == {
        event.event_type for event in events
    }
    assert sorted(audit.event_types_for(order_id)) == sorted(e.event_type for e in events)
    assert notifications.for_order(order_id) == []
    # A return's refund (payment.refunded.v2) is no compensation of an order saga.
    assert [
        metrics.compensations.labels(step)._value.get() for step in COMPENSATED_STEP.values()
    ] == [0] * len(COMPENSATED_STEP)
    letters = await list_dead_letters(bootstrap, _DOMAIN_TOPICS)
    assert [letter for letter in letters if letter.key == order_id.encode()] == []
    for db in (projector_db, audit_db, notifications_db):
        db.close()
