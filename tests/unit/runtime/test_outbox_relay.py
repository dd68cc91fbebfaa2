"""The outbox relay's batches against a stand-in producer whose sends the test settles: which
rows are marked sent, what is measured and logged. Against the real broker (order across a
thousand events, outages, claims): ``tests/system/runtime/test_event_bus.py``.
"""

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, NotLeaderForPartitionError
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client import CollectorRegistry

from runtime import (
    Database,
    EventBusMetrics,
    Outbox,
    OutboxClaims,
    OutboxRelay,
    Where,
    open_database,
    transaction,
)
from tests.support.samples import payment_completed

Outcome = float | BaseException | None
"""What becomes of one send: acknowledged after so many seconds, failed with that error, or
never settled."""


class _Producer:
    """Takes the relay's sends in order and settles each as ``outcome(index)`` says."""

    def __init__(self, outcome: Callable[[int], Outcome] = lambda _: 0.0) -> None:
        self._outcome = outcome
        self.sent: list[tuple[str, bytes]] = []
        """(topic, key) of each send, in the order the relay made them."""

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(
        self, topic: str, value: bytes, *, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        outcome = self._outcome(len(self.sent))
        self.sent.append((topic, key))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if isinstance(outcome, BaseException):
            loop.call_soon(future.set_exception, outcome)
        elif outcome is not None:
            loop.call_later(outcome, future.set_result, None)
        return future


def _relay(outbox: Outbox, producer: _Producer, **options: Any) -> OutboxRelay:
    return OutboxRelay(outbox, lambda: cast("AIOKafkaProducer", producer), **options)


@pytest.fixture
def db(database_at: Callable[[str], Where]) -> Database:
    return open_database(database_at("service"))


def _write(db: Database, count: int, *, orders: int = 2) -> list[str]:
    """``count`` events of ``orders`` orders, interleaved; their event ids in written order."""
    outbox = Outbox(db)
    events = [payment_completed(f"ord-{n % orders}", f"pay-{n}") for n in range(count)]
    for event in events:
        with transaction(db):
            outbox.add(event)
    return [str(event.event_id) for event in events]


def _pending(outbox: Outbox) -> list[str]:
    return [row.event_id for row in outbox.pending()]


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


async def test_a_batch_is_sent_in_the_order_written_and_every_row_is_marked(db: Database) -> None:
    written = _write(db, 6)
    outbox, producer = Outbox(db), _Producer()
    assert await _relay(outbox, producer).publish_pending() == 6
    rows = outbox.rows_for_order("ord-0") + outbox.rows_for_order("ord-1")
    assert sorted(row.event_id for row in rows if row.sent_at is not None) == sorted(written)
    assert producer.sent == [(row.topic, row.key) for row in sorted(rows, key=lambda r: r.id)]


async def test_rows_after_the_first_failed_send_stay_pending_and_the_error_is_raised(
    db: Database,
) -> None:
    """Sends 0 and 1 are acknowledged, send 2 fails, sends 3 and 4 are acknowledged later:
    only the rows before the failure are marked, the rest are sent again next time."""
    written = _write(db, 5)
    outbox = Outbox(db)
    failure = NotLeaderForPartitionError()
    producer = _Producer(lambda index: failure if index == 2 else 0.01 * index)
    with pytest.raises(KafkaError) as raised:
        await _relay(outbox, producer).publish_pending()
    assert raised.value is failure
    assert _pending(outbox) == written[2:]


async def test_a_batch_not_acknowledged_in_time_raises_and_marks_what_was(db: Database) -> None:
    written = _write(db, 4)
    outbox = Outbox(db)
    producer = _Producer(lambda index: 0.0 if index < 2 else None)
    with pytest.raises(TimeoutError):
        await _relay(outbox, producer, send_timeout=0.2).publish_pending()
    assert _pending(outbox) == written[2:]


async def test_a_relay_cancelled_while_waiting_marks_what_kafka_acknowledged(
    db: Database,
) -> None:
    written = _write(db, 3)
    outbox = Outbox(db)
    producer = _Producer(lambda index: 0.0 if index == 0 else None)
    publishing = asyncio.create_task(_relay(outbox, producer).publish_pending())
    await asyncio.sleep(0.1)
    publishing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await publishing
    assert _pending(outbox) == written[1:]


async def test_each_events_publish_latency_runs_from_its_send_to_its_own_ack(
    db: Database,
) -> None:
    """One event is acknowledged at once, the other after 0.6 s: the histogram has one fast
    and one slow observation, not two of the batch's time."""
    _write(db, 2)
    outbox, registry = Outbox(db), CollectorRegistry()
    producer = _Producer(lambda index: 0.6 if index == 1 else 0.0)
    relay = _relay(outbox, producer, metrics=EventBusMetrics(registry))
    assert await relay.publish_pending() == 2
    (topic,) = {row.topic for row in outbox.rows_for_order("ord-0")}
    latency = "event_publish_latency_seconds"
    assert _sample(registry, f"{latency}_count", topic=topic) == 2
    assert _sample(registry, f"{latency}_bucket", topic=topic, le="0.5") == 1
    assert _sample(registry, f"{latency}_sum", topic=topic) >= 0.6
    published = _sample(
        registry, "events_published_total", event_type="payment.completed.v1", topic=topic
    )
    assert published == 2


async def test_the_backlog_gauge_counts_the_pending_rows(db: Database) -> None:
    _write(db, 3)
    registry = CollectorRegistry()
    relay = _relay(Outbox(db), _Producer(), metrics=EventBusMetrics(registry))
    await relay.publish_pending()
    assert _sample(registry, "outbox_backlog") == 3


async def test_a_batch_logs_one_line_at_info_and_one_per_event_at_debug(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    written = _write(db, 4)
    outbox = Outbox(db)
    failure = NotLeaderForPartitionError()
    relay = _relay(outbox, _Producer(lambda index: failure if index == 3 else 0.0))

    caplog.set_level(logging.INFO, logger="runtime._outbox")
    with pytest.raises(KafkaError):
        await relay.publish_pending()
    (line,) = [r for r in caplog.records if r.name == "runtime._outbox"]
    assert (line.levelno, line.getMessage()) == (logging.INFO, "Events published")
    assert line.__dict__["events"] == 3
    assert line.__dict__["topics"] == ["payment.events"]
    assert line.__dict__["eventIds"] == written[:3]  # each acknowledged publish, by its id

    caplog.clear()
    caplog.set_level(logging.DEBUG, logger="runtime._outbox")
    relay = _relay(outbox, _Producer())
    await relay.publish_pending()
    per_event = [r for r in caplog.records if r.getMessage() == "Event published"]
    assert [r.__dict__["eventId"] for r in per_event] == written[3:]
    assert all(r.levelno == logging.DEBUG for r in per_event)
    assert per_event[0].__dict__["orderId"] == per_event[0].__dict__["correlationId"] == "ord-1"


async def test_a_traced_events_publish_span_and_debug_line_join_its_trace(
    db: Database, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Events written in a trace: each acknowledged one's ``publish`` span ends in that trace,
    named on its DEBUG line; the one Kafka refused ends as an error."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    monkeypatch.setattr("runtime._tracing._tracer", provider.get_tracer("runtime"))
    outbox = Outbox(db)
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("payment.charge") as charge, transaction(db):
        outbox.add(payment_completed("ord-traced", "pay-1"))
        outbox.add(payment_completed("ord-traced", "pay-2"))
    trace_id = charge.get_span_context().trace_id
    failure = NotLeaderForPartitionError()
    relay = _relay(outbox, _Producer(lambda index: failure if index == 1 else 0.0))

    caplog.set_level(logging.DEBUG, logger="runtime._outbox")
    with pytest.raises(KafkaError):
        await relay.publish_pending()
    publish = [s for s in exporter.get_finished_spans() if s.name == "payment.events publish"]
    assert [s.context.trace_id for s in publish] == [trace_id, trace_id]
    assert [s.status.status_code for s in publish] == [StatusCode.UNSET, StatusCode.ERROR]
    (line,) = [r for r in caplog.records if r.getMessage() == "Event published"]
    assert line.__dict__["traceId"] == format(trace_id, "032x")
    assert line.__dict__["spanId"] == format(publish[0].context.span_id, "016x")


@pytest.mark.postgres
async def test_a_claim_commits_the_marks_of_what_kafka_acknowledged_before_a_failure(
    postgres_database: str,
) -> None:
    db = open_database(postgres_database, schema=f"claims_{uuid.uuid4().hex[:12]}")
    written = _write(db, 4)
    outbox, claims = Outbox(db), OutboxClaims(db.reopen())
    failure = NotLeaderForPartitionError()
    relay = _relay(outbox, _Producer(lambda index: failure if index == 2 else 0.0), claims=claims)
    try:
        with pytest.raises(KafkaError):
            await relay.publish_pending()
    finally:
        claims.close()
    assert _pending(outbox) == written[2:]
