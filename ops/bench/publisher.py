"""Publishing throughput: Kafka's ceiling, aiokafka alone, and the project's own publisher.

All three send the same number of records of the same size (a typical encoded event) with
the same producer settings as :func:`runtime.new_producer` (``acks=all``, idempotent, lz4,
``linger.ms`` 0) to a bench topic of the catalog's shape, created for the run and deleted
after it. Latency is per record, from the producer's ``send`` to the broker's acknowledgement,
as Kafka's ``ProducerPerformance`` measures it.
"""

import asyncio
import contextlib
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from contracts.codec import encode_event
from contracts.events.common import Money
from contracts.events.payment import PaymentCompleted, PaymentCompletedData
from contracts.topics import TopicSpec
from infra.config.kafka import KafkaTarget, as_connection
from infra.config.logs import log_handler
from infra.config.settings import Settings
from infra.engines.kafka_broker import apply_topic_catalog
from ops.bench.load import Say
from ops.bench.stats import LatencySummary, summarize
from runtime import (
    Database,
    DatabaseError,
    EventBusMetrics,
    Outbox,
    OutboxRelay,
    SchemaRegistry,
    compression_type,
    new_admin,
    new_producer,
    open_database,
    transaction,
)

__all__ = [
    "PublisherFigures",
    "bench_topic",
    "java_producer_props",
    "measure_aiokafka_producer",
    "measure_project_publisher",
    "measure_relay_modes",
    "typical_event",
]


class PublisherFigures(BaseModel):
    """One publisher's run: how many records, how fast, how long each waited for its ack."""

    publisher: str
    records: int
    record_bytes: int
    duration_s: float
    records_per_s: float
    mb_per_s: float
    latency: LatencySummary | None
    notes: list[str] = []


def typical_event(order_id: str | None = None) -> PaymentCompleted:
    """A ``payment.completed.v1`` as the payment service writes it."""
    order_id = order_id or f"bench-{uuid.uuid4().hex[:8]}-{0:06d}"
    return PaymentCompleted(
        source="payment-service",
        correlation_id=order_id,
        causation_id=f"order-{order_id}/2",
        data=PaymentCompletedData(
            order_id=order_id,
            payment_id=f"pay-{uuid.uuid4().hex[:16]}",
            amount=Money(amount_minor=1999, currency="EUR"),
        ),
    )


def java_producer_props(bootstrap_servers: KafkaTarget) -> dict[str, str]:
    """The settings of :func:`runtime.new_producer`, in the Java client's names."""
    props = {
        **as_connection(bootstrap_servers).java_properties(),
        "acks": "all",
        "enable.idempotence": "true",
        "linger.ms": "0",
        "batch.size": str(256 * 1024),
        "request.timeout.ms": "15000",
    }
    compression = compression_type()
    if compression is not None:
        props["compression.type"] = compression
    return props


@contextlib.asynccontextmanager
async def bench_topic(bootstrap_servers: KafkaTarget, name: str) -> AsyncIterator[str]:
    """A topic shaped like the domain topics (the catalog's defaults), deleted on exit."""
    await apply_topic_catalog(bootstrap_servers, [TopicSpec(name=name)])
    try:
        yield name
    finally:
        admin = new_admin(bootstrap_servers)
        try:
            await admin.start()
            await admin.delete_topics([name], timeout_ms=15000)
        except KafkaError:
            pass  # the run's figures stand; a leftover bench topic is harmless
        finally:
            await admin.close()


def _figures(
    publisher: str,
    *,
    records: int,
    record_bytes: int,
    duration: float,
    latencies: list[float],
    notes: list[str],
) -> PublisherFigures:
    return PublisherFigures(
        publisher=publisher,
        records=records,
        record_bytes=record_bytes,
        duration_s=round(duration, 3),
        records_per_s=round(records / duration, 1),
        mb_per_s=round(records * record_bytes / duration / 2**20, 2),
        latency=summarize(latencies),
        notes=notes,
    )


async def measure_aiokafka_producer(
    bootstrap_servers: KafkaTarget, topic: str, *, records: int, say: Say
) -> PublisherFigures:
    """aiokafka's producer alone (:func:`runtime.new_producer`): no outbox, no database."""
    encoded = encode_event(typical_event())
    keys = [f"bench-key-{i}".encode() for i in range(1000)]
    latencies: list[float] = []
    producer = new_producer(bootstrap_servers)
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for index in range(records):
            sent = time.perf_counter()
            future = await producer.send(
                topic, encoded.value, key=keys[index % len(keys)], headers=encoded.headers
            )
            future.add_done_callback(
                lambda _, sent=sent: latencies.append(time.perf_counter() - sent)
            )
            futures.append(future)
        await asyncio.gather(*futures)
        duration = time.perf_counter() - started
    finally:
        await asyncio.wait_for(producer.stop(), 15)
    say(f"  aiokafka producer: {records / duration:,.0f} records/s")
    return _figures(
        "aiokafka producer alone (runtime.new_producer)",
        records=records,
        record_bytes=len(encoded.value),
        duration=duration,
        latencies=latencies,
        notes=["sends the same encoded event with its key and headers, awaits every ack"],
    )


class _TimedProducer:
    """A producer that notes how long each record waited for its acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer, latencies: list[float]) -> None:
        self._producer = producer
        self._latencies = latencies

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> "asyncio.Future[Any]":
        sent = time.perf_counter()
        future: asyncio.Future[Any] = await self._producer.send(topic, value, **kwargs)
        future.add_done_callback(lambda _: self._latencies.append(time.perf_counter() - sent))
        return future

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


@contextlib.contextmanager
def _logging_as_a_service(level: str, path: Path) -> Iterator[None]:
    """The event bus logs at ``level`` in JSON lines to ``path``, as a service's does."""
    logger = logging.getLogger("runtime")
    saved = (logger.level, logger.propagate)
    with path.open("w") as stream:
        handler = log_handler("bench-publisher", "json", stream)
        logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = False
        try:
            yield
        finally:
            logger.removeHandler(handler)
            logger.setLevel(saved[0])
            logger.propagate = saved[1]


async def measure_project_publisher(
    bootstrap_servers: KafkaTarget,
    topic: str,
    *,
    records: int,
    log_level: str,
    say: Say,
    schemas: SchemaRegistry,
) -> PublisherFigures:
    """The path every service publishes through: events in the outbox, the relay sends them,
    each framed with its schema's registry id (``schemas``, looked up once and cached).

    The events are written first, each in its own transaction as a service writes them
    (timed apart), then the relay publishes the backlog with its default batch size, its
    metrics on, and the event bus logging at ``log_level`` to a file, as in a service
    (``SAGA_LOG_LEVEL``: at INFO, a JSON line per batch published); its rate is the
    publisher's.
    """
    latencies: list[float] = []
    with tempfile.TemporaryDirectory(prefix="saga-bench-") as folder:
        db = open_database(Path(folder) / "outbox.db")
        try:
            outbox = Outbox(db)
            written_at = time.perf_counter()
            record_bytes = 0
            for index in range(records):
                event = typical_event(f"bench-publisher-{index:07d}")
                with transaction(db):
                    outbox.add(event)
                    _to_bench_topic(db, topic)
                if index == 0:
                    record_bytes = len(encode_event(event).value)
                if index % 10_000 == 9_999:
                    say(f"  outbox: {index + 1:,} of {records:,} events written")
                    await asyncio.sleep(0)
            write_duration = time.perf_counter() - written_at
            say(f"  outbox: {records / write_duration:,.0f} events/s written; relaying")
            producers: list[_TimedProducer] = []

            def new_timed_producer() -> _TimedProducer:
                producers.append(_TimedProducer(new_producer(bootstrap_servers), latencies))
                return producers[-1]

            relay = OutboxRelay(
                outbox,
                new_timed_producer,
                metrics=EventBusMetrics(CollectorRegistry()),
                schemas=schemas,
            )
            started = time.perf_counter()
            try:
                # What OutboxRelay.run() does while there is a backlog, without its retries:
                # a failure here should end the bench, not wait for Kafka.
                with _logging_as_a_service(log_level, Path(folder) / "relay.log"):
                    while await relay.publish_pending():
                        pass
                duration = time.perf_counter() - started
            finally:
                for producer in producers:
                    with contextlib.suppress(KafkaError, TimeoutError):
                        await asyncio.wait_for(producer.stop(), 15)
        finally:
            db.close()
    say(f"  project publisher: {records / duration:,.0f} records/s")
    return _figures(
        "project publisher (Outbox + OutboxRelay + new_producer)",
        records=records,
        record_bytes=record_bytes,
        duration=duration,
        latencies=latencies,
        notes=[
            f"events written to the outbox first, one transaction each: "
            f"{records / write_duration:,.0f} events/s ({write_duration:.1f} s), not counted",
            f"relay with its defaults (batches of 500), its metrics on, each record framed "
            f"with its schema's registry id, and the event bus logging at {log_level} to a "
            f"file, as in a service (SAGA_LOG_LEVEL)",
        ],
    )


def _to_bench_topic(db: Database, topic: str) -> None:
    """Send the row just added to ``topic``: its own is a domain topic the stack's consumers
    read (the writer holds the outbox alone, so the newest row is its own)."""
    db.execute("UPDATE outbox SET topic = ? WHERE id = (SELECT max(id) FROM outbox)", (topic,))


EVENTS_PER_ORDER = 6
"""Events of one order in the relay comparison: a completed saga's six."""


async def measure_relay_modes(
    settings: Settings, url: str, topic: str, *, records: int, relays: int, say: Say
) -> list[PublisherFigures]:
    """The outbox relay on PostgreSQL, its two ways of sharing one outbox side by side: one
    lease holder publishing alone, then ``relays`` relays claiming rows at once (each in a
    process of its own, as copies of a service are).

    Each way publishes ``records`` events (``EVENTS_PER_ORDER`` per order, interleaved as
    sagas write them) from a scratch schema of the database at ``url`` (the orchestrator's:
    its role owns it), dropped afterwards. Timed from every relay connected to the outbox
    empty.
    """
    figures = []
    record_bytes = len(encode_event(typical_event()).value)
    for mode, count in (("lease", 1), ("claims", relays)):
        schema = f"bench_relay_{uuid.uuid4().hex[:8]}"
        db = open_database(url, schema=schema)
        try:
            outbox = Outbox(db)
            orders = max(records // EVENTS_PER_ORDER, 1)
            for index in range(records):
                with transaction(db):
                    outbox.add(typical_event(f"bench-relay-{index % orders:07d}"))
                    _to_bench_topic(db, topic)
                if index % 10_000 == 9_999:
                    await asyncio.sleep(0)
            say(f"  relays ({mode}, {count}): {records:,} events in the outbox; publishing")
            duration = await _run_relays(settings, url, schema, mode, count, outbox)
        finally:
            with contextlib.suppress(*DatabaseError):
                db.execute(f"DROP SCHEMA {schema} CASCADE")
            db.close()
        say(f"  relays ({mode}, {count}): {records / duration:,.0f} records/s")
        figures.append(
            _figures(
                f"outbox relay on PostgreSQL, {mode}: {count} relay(s)",
                records=records,
                record_bytes=record_bytes,
                duration=duration,
                latencies=[],
                notes=[
                    f"each relay a process of its own; {EVENTS_PER_ORDER} events per order, "
                    "interleaved; timed from every relay connected to the outbox empty"
                ],
            )
        )
    return figures


async def _run_relays(
    settings: Settings, url: str, schema: str, mode: str, count: int, outbox: Outbox
) -> float:
    env = {**os.environ, **settings.as_env()}
    workers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ops.bench.relay_worker",
            url,
            schema,
            mode,
            stdout=asyncio.subprocess.PIPE,
            env=env,
        )
        for _ in range(count)
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None
            if (await asyncio.wait_for(worker.stdout.readline(), 60)).strip() != b"ready":
                raise RuntimeError("a relay of the comparison did not start")
        started = time.perf_counter()
        while outbox.pending_count():
            if any(worker.returncode for worker in workers):
                raise RuntimeError("a relay of the comparison failed; the outbox is not empty")
            await asyncio.sleep(0.02)
        duration = time.perf_counter() - started
        for worker in workers:
            if await asyncio.wait_for(worker.wait(), 60) != 0:
                raise RuntimeError(f"a relay of the comparison failed (exit {worker.returncode})")
        return duration
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
