"""Trace context through the outbox, Kafka and a consumer: the record's headers carry it.

These tests run without a tracer provider of the process (as a process with traces off
does): a span of the test's own provider is current where the event is written, and the
consumer's handler must run in that span's trace.
"""

import asyncio
import sqlite3
import uuid
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from contracts.codec import (
    CONTENT_TYPE_HEADER,
    EVENT_TYPE_HEADER,
    SCHEMA_FINGERPRINT_HEADER,
    decode_event,
)
from contracts.envelope import AnyEvent
from contracts.events.common import Money
from contracts.events.payment import PaymentCompleted, PaymentCompletedData
from contracts.topics import topic_for_event_type
from infra.engines.kafka_broker import KafkaBroker
from runtime import (
    DLQ_HEADER_PREFIX,
    TRACE_HEADERS,
    EventConsumer,
    Outbox,
    OutboxRelay,
    consume_span,
    new_consumer,
    new_producer,
    open_database,
    transaction,
)

CONTRACT_HEADERS = {EVENT_TYPE_HEADER, SCHEMA_FINGERPRINT_HEADER, CONTENT_TYPE_HEADER}


def _payment(order_id: str) -> PaymentCompleted:
    return PaymentCompleted(
        source="payment-service",
        correlation_id=order_id,
        data=PaymentCompletedData(
            order_id=order_id, payment_id="pay-1", amount=Money(amount_minor=100, currency="EUR")
        ),
    )


def _span() -> Span:
    return TracerProvider().get_tracer("test").start_span("payment.charge")


def _trace_id(span: Span) -> int:
    return span.get_span_context().trace_id


def test_trace_headers_are_neither_contract_nor_dead_letter_headers() -> None:
    assert not TRACE_HEADERS & CONTRACT_HEADERS
    assert not any(name.startswith(DLQ_HEADER_PREFIX) for name in TRACE_HEADERS)


def test_an_event_written_outside_a_trace_has_only_the_contract_headers(tmp_path: Path) -> None:
    db = open_database(tmp_path / "service.db")
    outbox = Outbox(db)
    with transaction(db):
        outbox.add(_payment("ord-untraced"))
    (row,) = outbox.pending()
    assert {name for name, _ in row.headers} == CONTRACT_HEADERS


def test_an_event_written_in_a_trace_carries_it_and_still_decodes(tmp_path: Path) -> None:
    db = open_database(tmp_path / "service.db")
    outbox = Outbox(db)
    event = _payment("ord-traced")
    span = _span()
    with trace.use_span(span, end_on_exit=True), transaction(db):
        outbox.add(event)
    (row,) = outbox.pending()
    names = [name for name, _ in row.headers]
    assert set(names) == CONTRACT_HEADERS | {"traceparent"}
    traceparent = dict(row.headers)["traceparent"].decode()
    assert traceparent.split("-")[1] == format(_trace_id(span), "032x")
    assert decode_event(row.value, row.headers) == event

    with consume_span(
        row.headers,
        topic=row.topic,
        partition=0,
        offset=0,
        consumer_group="audit",
        event_type=row.event_type,
        order_id=row.order_id,
    ):
        assert trace.get_current_span().get_span_context().trace_id == _trace_id(span)


def test_garbled_trace_headers_are_ignored() -> None:
    garbled = [("traceparent", b"00-not-a-trace-01"), ("tracestate", None), ("baggage", b"\xff")]
    with consume_span(
        garbled,  # type: ignore[arg-type]  # Kafka header values can be null
        topic="payment.events",
        partition=0,
        offset=0,
        consumer_group="audit",
        event_type=None,
        order_id=None,
    ):
        assert not trace.get_current_span().get_span_context().is_valid


async def test_a_consumer_handles_the_event_in_the_trace_that_wrote_it(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Outbox → relay → Kafka → consumer: the handler runs in the writer's trace."""
    bootstrap = kafka_broker.bootstrap_servers
    order_id = f"trace-{uuid.uuid4()}"
    service_db = open_database(tmp_path / "service.db")
    outbox = Outbox(service_db)
    span = _span()
    with trace.use_span(span, end_on_exit=True), transaction(service_db):
        outbox.add(_payment(order_id))
    relay = OutboxRelay(outbox, lambda: new_producer(bootstrap))
    assert await relay.publish_pending() == 1
    await relay._drop_producer()

    seen: asyncio.Queue[int] = asyncio.Queue()

    async def handler(event: AnyEvent, db: sqlite3.Connection) -> None:
        if event.correlation_id == order_id:
            seen.put_nowait(trace.get_current_span().get_span_context().trace_id)

    consumer = EventConsumer(
        group_id=f"test-{uuid.uuid4()}",
        topics=[topic_for_event_type(PaymentCompleted.EVENT_TYPE)],
        handler=handler,
        database=open_database(tmp_path / "consumer.db"),
        consumer_factory=lambda group: new_consumer(bootstrap, group),
        producer_factory=lambda: new_producer(bootstrap),
    )
    task = asyncio.create_task(consumer.run())
    try:
        assert await asyncio.wait_for(seen.get(), timeout=60) == _trace_id(span)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
