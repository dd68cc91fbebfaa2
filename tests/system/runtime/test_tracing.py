"""Trace context through the outbox, Kafka and a consumer: the record's headers carry it.

This test runs without a tracer provider of the process (as a process with traces off
does): a span of the test's own provider is current where the event is written, and the
consumer's handler must run in that span's trace.
"""

import asyncio
import uuid
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Span

from contracts.envelope import AnyEvent
from contracts.events.payment import PaymentCompleted
from contracts.topics import topic_for_event_type
from infra.engines.kafka_broker import KafkaBroker
from runtime import (
    Database,
    Outbox,
    OutboxRelay,
    new_producer,
    open_database,
    transaction,
)
from tests.support.bus import bus_consumer, running
from tests.support.samples import payment_completed


def _span() -> Span:
    return TracerProvider().get_tracer("test").start_span("payment.charge")


def _trace_id(span: Span) -> int:
    return span.get_span_context().trace_id


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
        outbox.add(payment_completed(order_id))
    relay = OutboxRelay(outbox, lambda: new_producer(bootstrap))
    assert await relay.publish_pending() == 1
    await relay._drop_producer()

    seen: asyncio.Queue[int] = asyncio.Queue()

    async def handler(event: AnyEvent, db: Database) -> None:
        if event.correlation_id == order_id:
            seen.put_nowait(trace.get_current_span().get_span_context().trace_id)

    topics = [topic_for_event_type(PaymentCompleted.EVENT_TYPE)]
    consumer = bus_consumer(bootstrap, topics, handler, open_database(tmp_path / "consumer.db"))
    async with running(consumer):
        assert await asyncio.wait_for(seen.get(), timeout=60) == _trace_id(span)
