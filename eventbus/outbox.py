"""The transactional outbox: events are written with the state change, published after.

A service writes its state change and :meth:`Outbox.add` in one local transaction. The
:class:`OutboxRelay` in the same process publishes pending rows in the order they were
written and marks them sent. A row is marked only after Kafka acknowledged it, so a crash
or an outage can publish a row twice but never lose one; consumers drop the second copy by
its event id (the inbox).
"""

import asyncio
import contextlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber
from opentelemetry.trace import Span, Status, StatusCode

from contracts.codec import encode_event
from contracts.envelope import AnyEvent
from eventbus.metrics import EventBusMetrics
from eventbus.tracing import creation_headers, publish_span
from eventbus.transaction import transaction

__all__ = ["Outbox", "OutboxRelay", "OutboxRow"]

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id    TEXT NOT NULL UNIQUE,
    event_type  TEXT NOT NULL,
    order_id    TEXT NOT NULL,
    topic       TEXT NOT NULL,
    key         BLOB NOT NULL,
    value       BLOB NOT NULL,
    headers     TEXT NOT NULL,
    created_at  REAL NOT NULL,
    sent_at     REAL
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE sent_at IS NULL;
"""


@dataclass(frozen=True)
class OutboxRow:
    """One event waiting in (or sent from) the outbox."""

    id: int
    event_id: str
    event_type: str
    order_id: str
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    created_at: float
    sent_at: float | None


def _row(raw: sqlite3.Row) -> OutboxRow:
    headers = [(name, bytes.fromhex(value)) for name, value in json.loads(raw["headers"])]
    return OutboxRow(
        id=raw["id"],
        event_id=raw["event_id"],
        event_type=raw["event_type"],
        order_id=raw["order_id"],
        topic=raw["topic"],
        key=raw["key"],
        value=raw["value"],
        headers=headers,
        created_at=raw["created_at"],
        sent_at=raw["sent_at"],
    )


class Outbox:
    """The outbox table of one service database."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection
        self._db.executescript(_SCHEMA)
        self._added = asyncio.Event()

    def add(self, event: AnyEvent) -> None:
        """Add ``event`` to the outbox, inside the caller's open transaction.

        Raises:
            SchemaViolation: the event does not match its schema (nothing is written).
        """
        encoded = encode_event(event)
        trace_headers = creation_headers(
            topic=encoded.topic,
            event_id=str(event.event_id),
            event_type=type(event).EVENT_TYPE,
            order_id=event.correlation_id,
        )
        headers = json.dumps(
            [(name, value.hex()) for name, value in [*encoded.headers, *trace_headers]]
        )
        self._db.execute(
            "INSERT INTO outbox (event_id, event_type, order_id, topic, key, value, headers,"
            " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                str(event.event_id),
                type(event).EVENT_TYPE,
                event.correlation_id,
                encoded.topic,
                encoded.key,
                encoded.value,
                headers,
                time.time(),
            ),
        )
        self._added.set()

    def pending(self, limit: int = 500) -> list[OutboxRow]:
        """The oldest rows not yet sent, in the order they were written."""
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id LIMIT ?", (limit,)
        ).fetchall()
        return [_row(raw) for raw in rows]

    def pending_count(self) -> int:
        """How many rows wait to be published (the outbox backlog)."""
        count: int = self._db.execute(
            "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL"
        ).fetchone()[0]
        return count

    def rows_for_order(self, order_id: str) -> list[OutboxRow]:
        """Every row of one order, sent or not, in the order they were written."""
        rows = self._db.execute(
            "SELECT * FROM outbox WHERE order_id = ? ORDER BY id", (order_id,)
        ).fetchall()
        return [_row(raw) for raw in rows]

    def mark_sent(self, ids: list[int]) -> None:
        """Mark rows as published."""
        if not ids:
            return
        now = time.time()
        with transaction(self._db):
            self._db.executemany(
                "UPDATE outbox SET sent_at = ? WHERE id = ?", [(now, row_id) for row_id in ids]
            )

    async def wait_for_new(self, seconds: float) -> None:
        """Return when an event was added (in this process) or after ``seconds``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._added.wait(), seconds)
        self._added.clear()


def _report_published(rows: list[OutboxRow], spans: list[Span | None], sent: int) -> None:
    """End the rows' publish spans and log the first ``sent`` rows, which Kafka acknowledged."""
    for index, span in enumerate(spans):
        if span is None:
            continue
        if index >= sent:
            span.set_status(Status(StatusCode.ERROR, "not acknowledged by Kafka"))
        span.end()
    if not log.isEnabledFor(logging.INFO):
        return
    for row, span in zip(rows[:sent], spans, strict=False):
        fields = {
            "eventId": row.event_id,
            "eventType": row.event_type,
            "topic": row.topic,
            "correlationId": row.order_id,
            "orderId": row.order_id,
        }
        if span is not None:  # the line joins the event's trace, as consumers' lines do
            context = span.get_span_context()
            fields["traceId"] = format(context.trace_id, "032x")
            fields["spanId"] = format(context.span_id, "016x")
        log.info("Event published", extra=fields)


def _stamp(stamps: list[float], index: int, _future: object) -> None:
    """Note when a send's future settled (its acknowledgement, as the producer saw it)."""
    stamps[index] = time.perf_counter()


class OutboxRelay:
    """Publishes an outbox's pending rows in order, until stopped."""

    def __init__(
        self,
        outbox: Outbox,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        metrics: EventBusMetrics | None = None,
        batch_size: int = 500,
        send_timeout: float = 10.0,
        idle_poll: float = 0.2,
    ) -> None:
        self._outbox = outbox
        self._new_producer = producer_factory
        self._metrics = metrics
        self._batch_size = batch_size
        self._send_timeout = send_timeout
        self._idle_poll = idle_poll
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        """Publish forever; a broker outage only delays publishing (rows stay pending)."""
        backoff = 0.2
        try:
            while True:
                try:
                    sent = await self.publish_pending()
                except (KafkaError, OSError, TimeoutError) as exc:
                    log.warning(
                        "outbox relay: Kafka unavailable (%s), retrying in %.1fs", exc, backoff
                    )
                    if self._metrics is not None:
                        self._metrics.publish_errors.labels(type(exc).__name__).inc()
                    await self._drop_producer()
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                backoff = 0.2
                if sent == 0:
                    await self._outbox.wait_for_new(self._idle_poll)
        finally:
            await self._drop_producer()

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in order; return how many were sent.

        Raises:
            KafkaError: the broker refused or did not acknowledge; no row of the batch
                after the first unacknowledged one is marked sent.
            TimeoutError: the broker did not answer within the send time-out.
        """
        rows = self._outbox.pending(self._batch_size)
        if self._metrics is not None:
            self._metrics.outbox_backlog.set(self._outbox.pending_count())
        if not rows:
            return 0
        producer = await self._ensure_producer()
        sending_since = time.time_ns()
        # Sends are queued in order and batched by the producer; the idempotent producer
        # keeps their order per partition even when it retries. Each row's publish latency
        # runs from its own send to its own acknowledgement.
        sent_at: list[float] = []
        acked_at = [0.0] * len(rows)
        futures = []
        for index, row in enumerate(rows):
            sent_at.append(time.perf_counter())
            future = await producer.send(row.topic, row.value, key=row.key, headers=row.headers)
            future.add_done_callback(partial(_stamp, acked_at, index))
            futures.append(future)
        spans = [
            publish_span(
                row.headers,
                topic=row.topic,
                event_id=row.event_id,
                event_type=row.event_type,
                order_id=row.order_id,
                start_time=sending_since,
            )
            for row in rows
        ]
        acknowledged: list[int] = []
        try:
            for row, future in zip(rows, futures, strict=True):
                await asyncio.wait_for(asyncio.shield(future), self._send_timeout)
                acknowledged.append(row.id)
        except OutOfOrderSequenceNumber:
            await self._drop_producer()  # only a new producer recovers from this (aiokafka #1017)
            raise
        finally:
            self._outbox.mark_sent(acknowledged)
            if self._metrics is not None:
                for index, row in enumerate(rows[: len(acknowledged)]):
                    self._metrics.published(
                        row.event_type, row.topic, acked_at[index] - sent_at[index], len(row.value)
                    )
            _report_published(rows, spans, len(acknowledged))
        return len(acknowledged)

    async def _ensure_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = self._new_producer()
            try:
                await asyncio.wait_for(producer.start(), self._send_timeout)
            except BaseException:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(producer.stop(), self._send_timeout)
                raise
            self._producer = producer
        return self._producer

    async def _drop_producer(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            # stop() can hang while the broker is down (aiokafka #1101).
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), self._send_timeout)
