"""Consuming domain events: at least once from Kafka, exactly once in effect.

For every record: decode it (a record that cannot be read goes straight to the dead-letter
topic); skip it if the inbox has its event id; otherwise run the handler and record the
event id in the inbox in the same local transaction. A failing handler is retried with
exponential backoff (100, 200, 400 ms by default); after the last attempt the record goes
to ``<topic>.dlq`` with the error, and the partition moves on. Offsets are committed only
for records that were handled or dead-lettered.
"""

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalGenerationError, KafkaError
from opentelemetry.trace import Span

from contracts.codec import EVENT_TYPE_HEADER, decode_event
from contracts.envelope import AnyEvent
from contracts.errors import ContractError
from contracts.topics import dlq_topic
from eventbus.metrics import EventBusMetrics
from eventbus.tracing import consume_span, mark_failed
from eventbus.transaction import transaction

__all__ = [
    "DLQ_HEADER_PREFIX",
    "EventConsumer",
    "EventHandler",
    "Inbox",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "dlq_"

EventHandler = Callable[[AnyEvent, sqlite3.Connection], Awaitable[None]]
"""Handles one event; its database writes join the inbox's transaction.

A handler that awaits while the transaction is open (a network call) needs a database file
that no other writer of the same process uses: SQLite waits for a lock by blocking the
event loop, and the lock's holder could then never finish.
"""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a failing handler is tried, and how long to wait in between."""

    attempts: int = 3
    first_backoff: float = 0.1
    multiplier: float = 2.0

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number ``attempt`` (1-based)."""
        return self.first_backoff * self.multiplier ** (attempt - 1)


class Inbox:
    """The event ids a consumer group has handled, in the handler's own database."""

    def __init__(self, connection: sqlite3.Connection, consumer_group: str) -> None:
        self._db = connection
        self._group = consumer_group
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS inbox (consumer_group TEXT NOT NULL,"
            " event_id TEXT NOT NULL, event_type TEXT NOT NULL, handled_at REAL NOT NULL,"
            " PRIMARY KEY (consumer_group, event_id))"
        )

    def seen(self, event_id: str) -> bool:
        """Whether the event was handled already."""
        found = self._db.execute(
            "SELECT 1 FROM inbox WHERE consumer_group = ? AND event_id = ?", (self._group, event_id)
        ).fetchone()
        return found is not None

    def record(self, event_id: str, event_type: str) -> None:
        """Note the event as handled (inside the handler's transaction)."""
        self._db.execute(
            "INSERT INTO inbox (consumer_group, event_id, event_type, handled_at)"
            " VALUES (?, ?, ?, ?)",
            (self._group, event_id, event_type, time.time()),
        )


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was handled before partitions move, so the next owner starts there."""

    def __init__(self, owner: "EventConsumer") -> None:
        self._owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        await self._owner.commit_handled()
        self._owner.forget_partitions(revoked)

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        log.info("%s: assigned %s", self._owner.group_id, sorted(str(tp) for tp in assigned))


class EventConsumer:
    """One consumer group member that hands each event of its topics to a handler."""

    def __init__(
        self,
        *,
        group_id: str,
        topics: list[str],
        handler: EventHandler,
        database: sqlite3.Connection,
        consumer_factory: Callable[[str], AIOKafkaConsumer],
        producer_factory: Callable[[], AIOKafkaProducer],
        retry: RetryPolicy | None = None,
        metrics: EventBusMetrics | None = None,
        reader_types: dict[str, str] | None = None,
        commit_interval: float = 0.5,
    ) -> None:
        """``commit_interval``: under a steady flow, offsets are committed at most this often
        (seconds); a pause in the flow, a rebalance and a stop commit at once. A crash reads
        again at most that much, and the inbox drops what was handled."""
        self.group_id = group_id
        self._topics = topics
        self._handler = handler
        self._db = database
        self._inbox = Inbox(database, group_id)
        self._new_consumer = consumer_factory
        self._new_producer = producer_factory
        self._retry = retry or RetryPolicy()
        self._metrics = metrics
        self._reader_types = reader_types or {}
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._handled: dict[TopicPartition, int] = {}
        self._commit_interval = commit_interval
        self._committed_at = 0.0
        self.assigned = asyncio.Event()

    async def run(self) -> None:
        """Consume until cancelled; the consumer and its dead-letter producer are stopped then."""
        consumer = self._new_consumer(self.group_id)
        producer = self._new_producer()
        consumer.subscribe(self._topics, listener=_Rebalance(self))
        await consumer.start()
        await producer.start()
        self._consumer, self._producer = consumer, producer
        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500)
                if consumer.assignment():
                    self.assigned.set()
                for partition, records in batches.items():
                    await self._consume_partition(consumer, partition, records)
                if not batches or time.monotonic() - self._committed_at >= self._commit_interval:
                    await self.commit_handled()
                await self._observe(consumer, batches)
        finally:
            with contextlib.suppress(Exception):
                await self.commit_handled()
            await consumer.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    async def _consume_partition(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, records: list[ConsumerRecord]
    ) -> None:
        for record in records:
            try:
                with _record_span(record, self.group_id):
                    await self._consume(record)
            except (KafkaError, TimeoutError) as exc:
                # The dead-letter write failed: read this record again rather than lose it.
                log.warning(
                    "%s: cannot dead-letter %s@%d (%s)",
                    self.group_id,
                    partition,
                    record.offset,
                    exc,
                )
                consumer.seek(partition, record.offset)
                await asyncio.sleep(1.0)
                return
            self._handled[partition] = record.offset + 1

    async def commit_handled(self) -> None:
        """Commit the offsets after the records handled so far, per partition."""
        if not self._handled or self._consumer is None:
            return
        offsets, self._handled = self._handled, {}
        self._committed_at = time.monotonic()
        started = time.perf_counter()
        try:
            await self._consumer.commit(offsets)
        except (CommitFailedError, IllegalGenerationError) as exc:
            # The group moved on (a rebalance): the next owner reads these records again and
            # the inbox drops them (aiokafka #933, #1054).
            log.info("%s: commit after rebalance refused (%s)", self.group_id, exc)
        else:
            if self._metrics is not None:
                self._metrics.commit_latency.labels(self.group_id).observe(
                    time.perf_counter() - started
                )

    def forget_partitions(self, partitions: list[TopicPartition]) -> None:
        """Stop reporting the lag of partitions this member gave up in a rebalance."""
        if self._metrics is not None:
            self._metrics.forget_partitions(
                self.group_id, [(tp.topic, tp.partition) for tp in partitions]
            )

    async def _observe(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord]]
    ) -> None:
        """Count the bytes fetched and set each owned partition's lag, from what the last
        fetches told the consumer (its high watermarks): no request to the broker."""
        if self._metrics is None:
            return
        for partition, records in batches.items():
            size = sum(len(record.value or b"") for record in records)
            self._metrics.fetched_bytes.labels(partition.topic, self.group_id).inc(size)
        for partition in consumer.assignment():
            highwater = consumer.highwater(partition)
            if highwater is None:
                continue  # nothing fetched from it yet
            try:
                # Known locally once the partition has been fetched from; the time-out only
                # guards a position being reset at this moment.
                position = await asyncio.wait_for(consumer.position(partition), 1.0)
            except (KafkaError, TimeoutError):
                continue
            self._metrics.lag(
                self.group_id, partition.topic, partition.partition, max(highwater - position, 0)
            )

    async def _consume(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        try:
            event = decode_event(record.value, record.headers, self._reader_types.get(record.topic))
        except ContractError as exc:
            await self._dead_letter(record, reason=_reason(exc), error=str(exc), attempts=0)
            return
        event_id = str(event.event_id)
        if self._inbox.seen(event_id):
            if self._metrics is not None:
                self._metrics.duplicates.labels(record.topic, self.group_id).inc()
            return
        for attempt in range(1, self._retry.attempts + 1):
            try:
                with transaction(self._db):
                    await self._handler(event, self._db)
                    self._inbox.record(event_id, event.event_type)
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                log.warning(
                    "%s: handling %s %s failed (attempt %d/%d): %s",
                    self.group_id, event.event_type, event_id, attempt, self._retry.attempts, exc,
                )  # fmt: skip
                if attempt == self._retry.attempts:
                    await self._dead_letter(
                        record, reason="handler-failed", error=f"{type(exc).__name__}: {exc}",
                        attempts=attempt,
                    )  # fmt: skip
                    return
                await asyncio.sleep(self._retry.backoff(attempt))
            else:
                break
        if self._metrics is not None:
            self._metrics.events_consumed.labels(
                event.event_type, record.topic, self.group_id
            ).inc()
            self._metrics.processing_duration.labels(event.event_type).observe(
                time.perf_counter() - started
            )
        if log.isEnabledFor(logging.INFO):
            log.info(
                "Event consumed",
                extra={
                    "eventId": event_id,
                    "eventType": event.event_type,
                    "topic": record.topic,
                    "correlationId": event.correlation_id,
                    "consumerGroup": self.group_id,
                    "processingTime": round((time.perf_counter() - started) * 1000, 3),
                    "orderId": event.correlation_id,
                },
            )

    async def _dead_letter(
        self, record: ConsumerRecord, *, reason: str, error: str, attempts: int
    ) -> None:
        assert self._producer is not None
        headers = [
            *[(k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_HEADER_PREFIX)],
            ("dlq_reason", reason.encode()),
            ("dlq_error", error[:4000].encode()),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_original_topic", record.topic.encode()),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self.group_id.encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await asyncio.wait_for(
            self._producer.send_and_wait(
                dlq_topic(record.topic), record.value, key=record.key, headers=headers
            ),
            timeout=15,
        )
        log.error(
            "%s: %s@%d offset %d dead-lettered (%s): %s",
            self.group_id, record.topic, record.partition, record.offset, reason, error,
        )  # fmt: skip
        mark_failed(f"dead-lettered ({reason})")
        if self._metrics is not None:
            self._metrics.dead_letters.labels(record.topic, reason).inc()


def _record_span(record: ConsumerRecord, consumer_group: str) -> AbstractContextManager[Span]:
    """The record's span; its event type and order are read from header and key (the record
    may not decode)."""
    event_type = next((v for k, v in record.headers or () if k == EVENT_TYPE_HEADER), None)
    key = record.key
    return consume_span(
        record.headers,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer_group=consumer_group,
        event_type=event_type.decode(errors="replace") if isinstance(event_type, bytes) else None,
        order_id=key.decode(errors="replace") if isinstance(key, bytes) else None,
    )


def _reason(error: ContractError) -> str:
    reason = getattr(error, "reason", None)
    return str(reason) if reason is not None else type(error).__name__
