"""Consuming domain events: at least once from Kafka, exactly once in effect.

For every record: decode it (a record that cannot be read goes straight to the dead-letter
topic); skip it if the inbox has its event id; otherwise run the handler and record the
event id in the inbox in the same local transaction. A failing handler is retried with
exponential backoff (100, 200, 400 ms by default); after the last attempt the record goes
to ``<topic>.dlq`` with the error, and the partition moves on (a handler that raises
:class:`HandlingFailed` names the dead letter's reason, and can refuse further attempts).
Offsets are committed only for records that were handled or dead-lettered.

No record stops the loop: whatever its bytes, headers, key or size, it is handled or
dead-lettered. A record the Kafka client itself cannot parse (a header name that is not
UTF-8) is found, its position dead-lettered, and read past. Failures that are not the
record's (the inbox's database, or a PostgreSQL connection lost while handling it: a server
restart; the schema registry away while a framed record's schema id is resolved) read the
record again a second later. A schema id the registry does not know is the record's fault:
it is dead-lettered (``unknown-schema-id``).
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import (
    CommitFailedError,
    CorruptRecordException,
    IllegalGenerationError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
)
from opentelemetry.trace import INVALID_SPAN, Span

from contracts.codec import EVENT_TYPE_HEADER
from contracts.envelope import AnyEvent
from contracts.errors import ContractError
from contracts.topics import dlq_topic
from runtime._database import ConnectionLost, Database
from runtime._metrics import EventBusMetrics
from runtime._schema_registry import SchemaRegistry, SchemaRegistryError, decode_record
from runtime._tracing import TRACE_HEADERS, consume_span, mark_failed
from runtime._transaction import transaction

__all__ = [
    "DLQ_DROPPED_HEADER",
    "DLQ_HEADER_PREFIX",
    "UNPARSEABLE_RECORD",
    "EventConsumer",
    "EventHandler",
    "HandlingFailed",
    "Inbox",
    "RetryPolicy",
]

log = logging.getLogger(__name__)

DLQ_HEADER_PREFIX = "dlq_"
DLQ_DROPPED_HEADER = "dlq_dropped"
"""Set on a dead letter that had to leave the record's key, value and headers out: with the
dead-letter headers added it was larger than the dead-letter topic takes. The record stays
at its original position (``dlq_original_*``) until the topic's retention removes it."""
UNPARSEABLE_RECORD = "unparseable-record"
"""The ``dlq_reason`` of a record the Kafka client cannot parse: its dead letter holds only
its position."""

# What aiokafka raises from getmany() when a fetched record cannot be parsed: a header name
# that is not UTF-8 (its C parser), a batch that fails its checksum (its Python parser).
_UNPARSEABLE = (UnicodeDecodeError, CorruptRecordException)
# How many records are read one at a time, per partition, to find an unparseable one.
_SEARCH_RECORDS = 500
_SEARCH_FETCH_MS = 200
# Longest key kept on a dead letter whose record was too large to copy.
_KEPT_KEY_BYTES = 256
# W3C's limit for baggage, the longest trace header; OpenTelemetry logs a longer one whole.
_MAX_TRACE_HEADER_BYTES = 8192

EventHandler = Callable[[AnyEvent, Database], Awaitable[None]]
"""Handles one event; its database writes join the inbox's transaction.

A handler that awaits while the transaction is open (a network call) needs a database file
that no other writer of the same process uses: SQLite waits for a lock by blocking the
event loop, and the lock's holder could then never finish.
"""


class HandlingFailed(Exception):
    """A handler's failure that says whether another attempt can help, and the reason its
    dead letter gives (``dlq_reason``); any other exception is retried as ``handler-failed``."""

    def __init__(self, message: str, *, reason: str, retryable: bool = True) -> None:
        super().__init__(message)
        self.reason = reason
        self.retryable = retryable


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

    def __init__(self, connection: Database, consumer_group: str) -> None:
        self._db = connection
        self._group = consumer_group

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
        database: Database,
        consumer_factory: Callable[[str], AIOKafkaConsumer],
        producer_factory: Callable[[], AIOKafkaProducer],
        retry: RetryPolicy | None = None,
        metrics: EventBusMetrics | None = None,
        reader_types: dict[str, str] | None = None,
        commit_interval: float = 0.5,
        schemas: SchemaRegistry | None = None,
    ) -> None:
        """``commit_interval``: under a steady flow, offsets are committed at most this often
        (seconds); a pause in the flow, a rebalance and a stop commit at once. A crash reads
        again at most that much, and the inbox drops what was handled.

        ``schemas``: the registry that resolves framed records' schema ids; without one, only
        records in the legacy format decode (a framed one is dead-lettered, its id unknown)."""
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
        self._schemas = schemas
        self._consumer: AIOKafkaConsumer | None = None
        self._producer: AIOKafkaProducer | None = None
        self._handled: dict[TopicPartition, int] = {}
        # The next offset to read per partition, kept across commits: where to go back to
        # when a fetch fails half-way (see _read_past_unparseable).
        self._next_offsets: dict[TopicPartition, int] = {}
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
                try:
                    batches = await consumer.getmany(timeout_ms=500)
                except _UNPARSEABLE as exc:
                    await self._read_past_unparseable(consumer, exc)
                    continue
                if consumer.assignment():
                    self.assigned.set()
                for partition, records in batches.items():
                    await self._consume_partition(consumer, partition, records)
                if not batches or time.monotonic() - self._committed_at >= self._commit_interval:
                    await self.commit_handled()
                await self._observe(consumer, batches)
        finally:
            # Bounded: a stop while Kafka is away (or the group is rebalancing) must not hang;
            # what is not committed is read again and dropped by the inbox.
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.commit_handled(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(consumer.stop(), 10)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), 10)

    async def _consume_partition(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition, records: list[ConsumerRecord]
    ) -> None:
        for record in records:
            try:
                with _record_span(record, self.group_id):
                    await self._consume(record)
            except SchemaRegistryError as exc:
                # The registry is away (or refuses us): not the record's fault. Read it again.
                log.warning(
                    "%s: cannot resolve the schema of %s@%d (%s); reading it again",
                    self.group_id,
                    partition,
                    record.offset,
                    exc,
                )
                consumer.seek(partition, record.offset)
                await asyncio.sleep(1.0)
                return
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
            except Exception:  # the loop must outlive any one failure
                # Not the record's fault (decoding and handler failures are dead-lettered in
                # _consume): the inbox's database, say. Read it again rather than lose it.
                log.exception(
                    "%s: consuming %s@%d failed; reading it again", self.group_id, partition,
                    record.offset,
                )  # fmt: skip
                consumer.seek(partition, record.offset)
                await asyncio.sleep(1.0)
                return
            self._handled[partition] = self._next_offsets[partition] = record.offset + 1

    async def _read_past_unparseable(self, consumer: AIOKafkaConsumer, error: Exception) -> None:
        """Find the record that aiokafka cannot parse, dead-letter its position, read past it.

        Such a record makes every getmany() fail, whichever partition it is on, and the failed
        call may have moved other partitions past records it never returned. So every
        partition goes back to the first record not handled yet, then each is read one record
        at a time (each handled as usual) until the record that fails, or a while.
        """
        log.warning("%s: a fetched record cannot be parsed (%r)", self.group_id, error)
        partitions = sorted(consumer.assignment(), key=lambda tp: (tp.topic, tp.partition))
        try:
            for partition in partitions:
                await self._rewind(consumer, partition)
            for partition in partitions:
                await self._search_partition(consumer, partition)
        except (KafkaError, TimeoutError) as exc:
            log.warning("%s: cannot look for the unparseable record (%s)", self.group_id, exc)
            await asyncio.sleep(1.0)

    async def _rewind(self, consumer: AIOKafkaConsumer, partition: TopicPartition) -> None:
        offset = self._next_offsets.get(partition)
        if offset is None:
            offset = await consumer.committed(partition)
        if offset is None:
            await consumer.seek_to_beginning(partition)
        else:
            consumer.seek(partition, offset)

    async def _search_partition(
        self, consumer: AIOKafkaConsumer, partition: TopicPartition
    ) -> None:
        for _ in range(_SEARCH_RECORDS):
            try:
                fetched = await consumer.getmany(
                    partition, timeout_ms=_SEARCH_FETCH_MS, max_records=1
                )
            except _UNPARSEABLE as exc:
                # One record at a time: the position is the record that failed.
                offset = await consumer.position(partition)
                unparseable = ConsumerRecord(
                    topic=partition.topic, partition=partition.partition, offset=offset,
                    timestamp=-1, timestamp_type=0, key=None, value=None, checksum=None,
                    serialized_key_size=-1, serialized_value_size=-1, headers=(),
                )  # fmt: skip
                await self._dead_letter(
                    unparseable,
                    reason=UNPARSEABLE_RECORD,
                    error=f"the Kafka client cannot parse the record: {type(exc).__name__}: {exc}",
                    attempts=0,
                )
                consumer.seek(partition, offset + 1)
                self._handled[partition] = self._next_offsets[partition] = offset + 1
                return
            records = fetched.get(partition)
            if not records:
                return
            await self._consume_partition(consumer, partition, records)

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
        except (KafkaError, TimeoutError) as exc:
            # Kafka is away: commit these with the next ones rather than stop consuming.
            for partition, offset in offsets.items():
                self._handled[partition] = max(offset, self._handled.get(partition, 0))
            log.warning("%s: commit failed, kept for the next one (%s)", self.group_id, exc)
        else:
            if self._metrics is not None:
                self._metrics.commit_latency.labels(self.group_id).observe(
                    time.perf_counter() - started
                )

    def forget_partitions(self, partitions: list[TopicPartition]) -> None:
        """Forget partitions this member gave up in a rebalance: their position and lag."""
        for partition in partitions:
            self._next_offsets.pop(partition, None)
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
                # guards a position being reset at this moment. asyncio.timeout, not wait_for:
                # Python 3.11's wait_for can swallow a cancellation that arrives as the inner
                # call finishes, and the consumer would never stop.
                async with asyncio.timeout(1.0):
                    position = await consumer.position(partition)
            except (KafkaError, TimeoutError):
                continue
            self._metrics.lag(
                self.group_id, partition.topic, partition.partition, max(highwater - position, 0)
            )

    async def _consume(self, record: ConsumerRecord) -> None:
        started = time.perf_counter()
        reader_type = self._reader_types.get(record.topic)
        try:
            event = await decode_record(self._schemas, record.value, record.headers, reader_type)
        except SchemaRegistryError:
            raise  # not the record's fault: read again (_consume_partition)
        except ContractError as exc:
            await self._dead_letter(record, reason=_reason(exc), error=str(exc), attempts=0)
            return
        except Exception as exc:  # noqa: BLE001 - the codec should not, but no bytes may stop us
            await self._dead_letter(
                record, reason="undecodable", error=f"{type(exc).__name__}: {exc}", attempts=0
            )
            return
        event_id = str(event.event_id)
        duplicate = self._inbox.seen(event_id)
        for attempt in range(1, self._retry.attempts + 1):
            if duplicate:
                break
            try:
                with transaction(self._db):
                    # Asked again under the write lock: another member of the group (a copy of
                    # this service sharing the database) may have handled it meanwhile.
                    duplicate = self._inbox.seen(event_id)
                    if not duplicate:
                        await self._handler(event, self._db)
                        self._inbox.record(event_id, event.event_type)
            except ConnectionLost:
                raise  # the database's trouble, not the record's: read it again a second later
            except Exception as exc:  # noqa: BLE001 - any handler failure is retried, then dead-lettered
                log.warning(
                    "%s: handling %s %s failed (attempt %d/%d): %s",
                    self.group_id, event.event_type, event_id, attempt, self._retry.attempts, exc,
                )  # fmt: skip
                retryable = not isinstance(exc, HandlingFailed) or exc.retryable
                if attempt == self._retry.attempts or not retryable:
                    reason = exc.reason if isinstance(exc, HandlingFailed) else "handler-failed"
                    await self._dead_letter(
                        record, reason=reason, error=f"{type(exc).__name__}: {exc}",
                        attempts=attempt,
                    )  # fmt: skip
                    return
                await asyncio.sleep(self._retry.backoff(attempt))
            else:
                break
        if duplicate:
            if self._metrics is not None:
                self._metrics.duplicates.labels(record.topic, self.group_id).inc()
            return
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
        error = error[:4000]
        dead_letter_headers = [
            ("dlq_reason", _utf8(reason)),
            ("dlq_error", _utf8(error)),
            ("dlq_attempts", str(attempts).encode()),
            ("dlq_original_topic", _utf8(record.topic)),
            ("dlq_original_partition", str(record.partition).encode()),
            ("dlq_original_offset", str(record.offset).encode()),
            ("dlq_consumer_group", _utf8(self.group_id)),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        original_headers = [
            (k, v) for k, v in (record.headers or ()) if not k.startswith(DLQ_HEADER_PREFIX)
        ]
        try:
            await self._send_dead_letter(
                record.topic, record.key, record.value, [*original_headers, *dead_letter_headers]
            )
        except (MessageSizeTooLargeError, RecordListTooLargeError) as exc:
            # The record and the headers added make more than the dead-letter topic takes.
            # A dead letter without its bytes beats a partition that can never move on.
            dropped = (
                f"key ({len(record.key or b'')} bytes), value ({len(record.value or b'')} bytes)"
                f" and headers ({len(original_headers)}) left out: too large for "
                f"{dlq_topic(record.topic)} ({type(exc).__name__})"
            )
            key = record.key if len(record.key or b"") <= _KEPT_KEY_BYTES else None
            await self._send_dead_letter(
                record.topic,
                key,
                None,
                [*dead_letter_headers, (DLQ_DROPPED_HEADER, _utf8(dropped))],
            )
        log.error(
            "%s: %s@%d offset %d dead-lettered (%s): %s",
            self.group_id, record.topic, record.partition, record.offset, reason, error,
        )  # fmt: skip
        mark_failed(f"dead-lettered ({reason})")
        if self._metrics is not None:
            self._metrics.dead_letters.labels(record.topic, reason).inc()

    async def _send_dead_letter(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes | None]],
    ) -> None:
        assert self._producer is not None
        if key is None and value is None:
            key = b""  # aiokafka sends no record without either (a tombstone without a key)
        async with asyncio.timeout(15):  # not wait_for: see _observe
            await self._producer.send_and_wait(dlq_topic(topic), value, key=key, headers=headers)


def _utf8(text: str) -> bytes:
    """``text`` as UTF-8, even with lone surrogates (an error message quoting odd input)."""
    return text.encode("utf-8", errors="backslashreplace")


def _attribute(raw: object) -> str | None:
    """A header or key as a span attribute: text, and short."""
    return raw[:200].decode(errors="replace") if isinstance(raw, bytes) else None


def _record_span(record: ConsumerRecord, consumer_group: str) -> AbstractContextManager[Span]:
    """The record's span; its event type and order are read from header and key (the record
    may not decode)."""
    event_type = next((v for k, v in record.headers or () if k == EVENT_TYPE_HEADER), None)
    headers = [
        (name, raw)
        for name, raw in record.headers or ()
        if name not in TRACE_HEADERS or len(raw or b"") <= _MAX_TRACE_HEADER_BYTES
    ]
    try:
        return consume_span(
            headers,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            consumer_group=consumer_group,
            event_type=_attribute(event_type),
            order_id=_attribute(record.key),
        )
    except Exception:  # noqa: BLE001 - garbled trace headers cost the record its span, no more
        log.warning("%s: no span for %s@%d", consumer_group, record.topic, record.offset)
        return nullcontext(INVALID_SPAN)


def _reason(error: ContractError) -> str:
    reason = getattr(error, "reason", None)
    return str(reason) if reason is not None else type(error).__name__
