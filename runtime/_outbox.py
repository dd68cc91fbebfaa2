"""The transactional outbox: events are written with the state change, published after.

A service writes its state change and :meth:`Outbox.add` in one local transaction. The
:class:`OutboxRelay` in the same process publishes pending rows in the order they were
written and marks them sent. A row is marked only after Kafka acknowledged it, so a crash
or an outage can publish a row twice but never lose one; consumers drop the second copy by
its event id (the inbox).

Copies of a service share its database, and so its outbox. A :class:`RelayLease` lets one
relay of them publish at a time: the holder renews it every fifth of its length, the others
take it once it has expired (the holder died) or been released (the holder stopped). A relay
that takes the lease first looks at the end of the partitions for the pending rows that its
predecessor got onto Kafka without marking them, and marks those instead of sending them
again. On PostgreSQL they may instead all publish at once: each relay claims rows
(:class:`OutboxClaims`) that no other holds, whole orders at a time, so the events of one
order still reach Kafka in the order they were written.

With a :class:`SchemaRegistry` the relay frames each row's stored Avro body with its schema's
registry id as it publishes (the Confluent wire format); while the registry cannot give an
id, nothing is sent and the rows wait.
"""

import asyncio
import contextlib
import functools
import json
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError, OutOfOrderSequenceNumber
from opentelemetry.trace import Span, Status, StatusCode

from contracts.codec import encode_event, frame, framed_headers
from contracts.envelope import AnyEvent
from runtime._database import Database, DatabaseError
from runtime._metrics import EventBusMetrics
from runtime._schema_registry import SchemaRegistry, SchemaRegistryError
from runtime._tracing import creation_headers, publish_span
from runtime._transaction import transaction

__all__ = [
    "LeaseHolder",
    "Outbox",
    "OutboxClaims",
    "OutboxRelay",
    "OutboxRow",
    "RelayLease",
    "pending_rows",
]

log = logging.getLogger(__name__)

_BACKLOG_COUNT_INTERVAL = 1.0
"""How often (seconds) a relay with metrics counts the pending rows for ``outbox_backlog``,
at most: the count scans the outbox's index of pending rows, too much work for every batch."""


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


@functools.lru_cache(maxsize=1024)
def _headers(text: str) -> tuple[tuple[str, bytes], ...]:
    """The headers a row holds as written by :meth:`Outbox.add` (JSON of names and hex).

    Cached: untraced events of one type carry the same headers, and the relay reads every row.

    Raises:
        TypeError, ValueError: ``text`` is not what :meth:`Outbox.add` writes.
    """
    return tuple((name, bytes.fromhex(value)) for name, value in json.loads(text))


def _row(raw: Any) -> OutboxRow:
    """One outbox row as read (its columns by name).

    Raises:
        ValueError: the row's headers are not what :meth:`Outbox.add` writes.
    """
    try:
        headers = list(_headers(raw["headers"]))  # a list of its own: the producer takes lists
    except (TypeError, ValueError) as exc:
        raise ValueError(f"outbox row of event {raw['event_id']} is unreadable ({exc})") from None
    return OutboxRow(
        id=raw["id"],
        event_id=raw["event_id"],
        event_type=raw["event_type"],
        order_id=raw["order_id"],
        topic=raw["topic"],
        key=bytes(raw["key"]),
        value=bytes(raw["value"]),
        headers=headers,
        created_at=raw["created_at"],
        sent_at=raw["sent_at"],
    )


def pending_rows(connection: Database, limit: int | None = None) -> list[OutboxRow]:
    """The oldest rows of the outbox in ``connection`` not yet sent (all of them by default),
    in the order they were written."""
    statement = "SELECT * FROM outbox WHERE sent_at IS NULL ORDER BY id"
    if limit is None:
        rows = connection.execute(statement).fetchall()
    else:
        rows = connection.execute(statement + " LIMIT ?", (limit,)).fetchall()
    return [_row(raw) for raw in rows]


_IDS_PER_UPDATE = 500
"""Rows marked sent by one statement: well under either engine's limit of parameters."""


def _mark_sent(connection: Database, ids: list[int]) -> None:
    """Mark the rows ``ids`` sent now, a few hundred per statement (not one by one)."""
    now = time.time()
    for start in range(0, len(ids), _IDS_PER_UPDATE):
        chunk = ids[start : start + _IDS_PER_UPDATE]
        connection.execute(
            f"UPDATE outbox SET sent_at = ? WHERE id IN ({', '.join('?' * len(chunk))})",
            (now, *chunk),
        )


class Outbox:
    """The outbox table of one service database."""

    def __init__(self, connection: Database) -> None:
        self._db = connection
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

    @property
    def database(self) -> Database:
        """The database the outbox is in."""
        return self._db

    def lease(self, owner: str, *, ttl: float) -> "RelayLease":
        """The right to publish this outbox, for a relay that ``owner`` names (see
        :class:`RelayLease`)."""
        return RelayLease(self._db, owner, ttl=ttl)

    def pending(self, limit: int = 500) -> list[OutboxRow]:
        """The oldest rows not yet sent, in the order they were written."""
        return pending_rows(self._db, limit)

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
        if ids:
            with transaction(self._db):
                _mark_sent(self._db, ids)

    async def wait_for_new(self, seconds: float) -> None:
        """Return when an event was added (in this process) or after ``seconds``."""
        # asyncio.timeout, not wait_for: Python 3.11's wait_for can swallow a cancellation
        # that arrives as the inner call finishes, and the relay would never stop.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._added.wait()
        self._added.clear()


class OutboxClaims:
    """Claims on a PostgreSQL outbox, so that several relays publish it in parallel.

    A claim is one transaction on a connection of the relay's own (never the service's: the
    claim stays open while Kafka acknowledges). It takes the oldest pending rows, skipping the
    rows other relays hold (``FOR UPDATE SKIP LOCKED``) and every row of an order another
    relay holds (a transaction-scoped advisory lock on the order id): the rows of one order
    are published by one relay at a time, in the order they were written, and the next
    relay's claim of that order sees them sent. The rows Kafka acknowledged are marked sent
    in the claim, which commits whatever happens; a relay that dies mid-claim leaves its rows
    pending, and another publishes them again (consumers' inboxes drop the second copy).
    """

    _CLAIM = (
        "SELECT * FROM outbox WHERE sent_at IS NULL"
        " AND pg_try_advisory_xact_lock(hashtext(order_id))"
        " ORDER BY id LIMIT ? FOR UPDATE SKIP LOCKED"
    )

    def __init__(self, connection: Database) -> None:
        if connection.dialect != "postgresql":
            raise ValueError("outbox claims need PostgreSQL (SQLite has one writer at a time)")
        self._db = connection

    @contextlib.contextmanager
    def claim(self, limit: int) -> Iterator[list[OutboxRow]]:
        """The rows claimed (maybe none), held until the block ends; then the claim commits
        the marks :meth:`mark_sent` made in it."""
        self._db.execute("BEGIN")
        try:
            rows = [_row(raw) for raw in self._db.execute(self._CLAIM, (limit,)).fetchall()]
            yield rows
        except BaseException:
            with contextlib.suppress(*DatabaseError):
                self._db.execute("COMMIT")  # the marks of what Kafka acknowledged stand
            raise
        self._db.execute("COMMIT")

    def mark_sent(self, ids: list[int]) -> None:
        """Mark claimed rows published (inside the claim)."""
        _mark_sent(self._db, ids)

    def close(self) -> None:
        """Close the claims' connection."""
        self._db.close()


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, and until when (a Unix time)."""

    owner: str | None
    """None once its last holder released it."""
    expires_at: float

    def free(self, now: float) -> bool:
        """Whether anybody may take the lease at ``now``: released, or expired."""
        return self.owner is None or self.expires_at <= now


class RelayLease:
    """The right to publish one database's outbox, held by one relay at a time.

    A row of ``relay_lease`` names the holder and when its hold ends. The holder renews it
    long before then; another relay takes it once it is free (:meth:`LeaseHolder.free`). The
    clock is each holder's own: copies on several machines (PostgreSQL) need their clocks in
    step (NTP), to well within the lease's length.
    """

    def __init__(
        self, connection: Database, owner: str, *, ttl: float = 5.0, name: str = "outbox"
    ) -> None:
        """``owner`` names this holder uniquely (the process and its start); ``ttl`` is how
        long a hold lasts after each renewal (seconds)."""
        self.owner = owner
        self.ttl = ttl
        self._name = name
        self._db = connection

    def holder(self) -> LeaseHolder | None:
        """The lease's holder as recorded, or None if nobody ever took it."""
        row = self._db.execute(
            "SELECT owner, expires_at FROM relay_lease WHERE name = ?", (self._name,)
        ).fetchone()
        return None if row is None else LeaseHolder(row["owner"], row["expires_at"])

    def acquire(self) -> float | None:
        """Take the lease if it is free or ours, for ``ttl`` seconds from now.

        Returns:
            When the hold ends (a Unix time), or None if another relay holds the lease.
        """
        with transaction(self._db):
            now = time.time()
            current = self.holder()
            if current is not None and current.owner != self.owner and not current.free(now):
                return None
            expires_at = now + self.ttl
            self._db.execute(
                "INSERT INTO relay_lease (name, owner, expires_at, renewed_at) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,"
                " expires_at = excluded.expires_at, renewed_at = excluded.renewed_at",
                (self._name, self.owner, expires_at, now),
            )
        return expires_at

    def release(self) -> None:
        """Give the lease up at once, if this relay holds it."""
        with transaction(self._db):
            self._db.execute(
                "UPDATE relay_lease SET owner = NULL, expires_at = ? WHERE name = ? AND owner = ?",
                (time.time(), self._name, self.owner),
            )


def _report_published(rows: list[OutboxRow], spans: list[Span | None], sent: int) -> None:
    """End the rows' publish spans and log the first ``sent`` rows, which Kafka acknowledged:
    one line for the batch, with every event's id (each publish is logged, as design document
    002 asks, at a fraction of a line per event's cost), and one per event at DEBUG."""
    for index, span in enumerate(spans):
        if span is None:
            continue
        if index >= sent:
            span.set_status(Status(StatusCode.ERROR, "not acknowledged by Kafka"))
        span.end()
    if sent and log.isEnabledFor(logging.INFO):
        log.info(
            "Events published",
            extra={
                "events": sent,
                "topics": sorted({row.topic for row in rows[:sent]}),
                "eventIds": [row.event_id for row in rows[:sent]],
            },
        )
    if not log.isEnabledFor(logging.DEBUG):
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
        log.debug("Event published", extra=fields)


class _Sends:
    """The sends of one batch, in order: when each was handed to the producer, when it
    settled (acknowledged or failed), and how many from the first Kafka acknowledged.

    One callback per send does the timing and the counting: ``asyncio.wait`` over the batch
    costs about three times as much per send, a time-out and a shield per send twice that.
    """

    def __init__(self) -> None:
        self._futures: list[asyncio.Future[Any]] = []
        self.sent_at: list[float] = []
        self.settled_at: list[float] = []
        self._unsettled = 0
        self._all_settled: asyncio.Future[None] | None = None

    def add(self, sent_at: float, future: asyncio.Future[Any]) -> None:
        """Follow one more send, handed to the producer at ``sent_at`` (``perf_counter``)."""
        self._futures.append(future)
        self.sent_at.append(sent_at)
        self.settled_at.append(0.0)
        self._unsettled += 1
        future.add_done_callback(partial(self._settled, len(self._futures) - 1))

    def _settled(self, index: int, _future: object) -> None:
        self.settled_at[index] = time.perf_counter()
        self._unsettled -= 1
        if not self._unsettled and self._all_settled is not None and not self._all_settled.done():
            self._all_settled.set_result(None)

    async def settle(self, seconds: float) -> None:
        """Wait until every send settled, for at most ``seconds`` (the sends go on after).

        Raises:
            KafkaError: the first send not acknowledged failed (what it failed with).
            TimeoutError: the first send not acknowledged was still waiting.
        """
        if self._unsettled:
            self._all_settled = asyncio.get_running_loop().create_future()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await self._all_settled
        for future in self._futures:
            if not future.done() or future.cancelled():
                raise TimeoutError(f"Kafka did not acknowledge a send within {seconds} s")
            if (error := future.exception()) is not None:
                raise error

    def acknowledged(self) -> int:
        """How many sends, from the first, Kafka acknowledged."""
        for index, future in enumerate(self._futures):
            if not future.done() or future.cancelled() or future.exception() is not None:
                return index
        return len(self._futures)


class OutboxRelay:
    """Publishes an outbox's pending rows in order, until stopped.

    With a :class:`RelayLease` it publishes only while it holds the lease, so that one relay
    per service database publishes however many copies of the service run. With a
    ``consumer_factory`` it checks Kafka for rows that may be there already (after taking the
    lease, and after a batch failed) before sending them.
    """

    def __init__(
        self,
        outbox: Outbox,
        producer_factory: Callable[[], AIOKafkaProducer],
        *,
        metrics: EventBusMetrics | None = None,
        batch_size: int = 500,
        send_timeout: float = 10.0,
        idle_poll: float = 0.2,
        lease: RelayLease | None = None,
        consumer_factory: Callable[[], AIOKafkaConsumer] | None = None,
        flush_timeout: float = 5.0,
        claims: OutboxClaims | None = None,
        schemas: SchemaRegistry | None = None,
    ) -> None:
        """``schemas``: the registry whose ids frame each record; without one, rows are
        published as stored (the legacy format that only this project's codec reads: for
        tools and tests that have no registry)."""
        if claims is not None and lease is not None:
            raise ValueError("a relay claims rows or holds the lease, not both")
        self._outbox = outbox
        self._claims = claims
        self._new_producer = producer_factory
        self._schemas = schemas
        self._metrics = metrics
        self._batch_size = batch_size
        self._send_timeout = send_timeout
        self._idle_poll = idle_poll
        self._producer: AIOKafkaProducer | None = None
        self._lease = lease
        self._new_consumer = consumer_factory
        self.flush_timeout = flush_timeout
        """How long :meth:`run` goes on publishing after :meth:`stop` (seconds)."""
        self._held_until = 0.0
        self._check_kafka_first = False
        self._stopping = asyncio.Event()
        self._backlog_due = 0.0

    def stop(self) -> None:
        """Ask :meth:`run` to publish what is pending (for at most ``flush_timeout`` seconds),
        release the lease and return."""
        self._stopping.set()

    @property
    def holds_lease(self) -> bool:
        """Whether this relay may publish now: it holds the lease long enough (or has none)."""
        if self._lease is None:
            return True
        # Half a lease of margin: a relay whose renewals fell behind (its process was held up)
        # stops starting batches well before another relay may take the lease over.
        return time.time() < self._held_until - self._lease.ttl / 2

    async def run(self) -> None:
        """Publish until :meth:`stop`, then flush; a broker outage only delays publishing
        (rows stay pending). Cancelled, it stops at once; the lease is released either way."""
        keeper = None
        if self._lease is not None:
            self._hold_lease()
            keeper = asyncio.create_task(self._keep_lease(), name="outbox-lease")
        try:
            await self._publish_until_stopped()
            await self._flush()
        finally:
            if keeper is not None:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
            self._release_lease()
            await self._drop_producer()

    async def _publish_until_stopped(self) -> None:
        backoff = 0.2
        while not self._stopping.is_set():
            if not self.holds_lease:
                await self._pause(self._idle_poll)
                continue
            try:
                if self._check_kafka_first:
                    await self._mark_published()
                sent = await self.publish_pending()
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("outbox relay: Kafka unavailable (%s), retrying in %.1fs", exc, backoff)
                if self._metrics is not None:
                    self._metrics.publish_errors.labels(type(exc).__name__).inc()
                # A batch that timed out may have reached Kafka: look before sending it again.
                self._check_kafka_first = self._new_consumer is not None
                await self._drop_producer()
                await self._pause(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except SchemaRegistryError as exc:
                # No id, no record: nothing of the batch was sent, and the rows wait.
                log.warning(
                    "outbox relay: schema registry unavailable (%s), retrying in %.1fs",
                    exc,
                    backoff,
                )
                if self._metrics is not None:
                    self._metrics.publish_errors.labels(type(exc).__name__).inc()
                await self._pause(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            except DatabaseError as exc:
                # The outbox's database is away (a restart): the rows wait there. A batch
                # Kafka acknowledged may not have been marked sent: look before sending again.
                log.warning(
                    "outbox relay: database unavailable (%s), retrying in %.1fs", exc, backoff
                )
                self._check_kafka_first = self._new_consumer is not None
                await self._pause(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            backoff = 0.2
            if sent == 0:
                await self._outbox.wait_for_new(self._idle_poll)

    async def _pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the relay is asked to stop."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _flush(self) -> None:
        """Publish what is pending, for at most ``flush_timeout`` seconds, if this relay may."""
        if not self.holds_lease:
            self._hold_lease()  # the last copy to stop takes a lease its holder gave up
            if not self.holds_lease:
                return  # the holder (another copy) publishes what this one wrote
        deadline = time.monotonic() + self.flush_timeout
        try:
            while (remaining := deadline - time.monotonic()) > 0:
                if self._check_kafka_first:
                    await asyncio.wait_for(self._mark_published(), remaining)
                    continue
                if await asyncio.wait_for(self.publish_pending(), remaining) == 0:
                    return
        except (KafkaError, OSError, TimeoutError, SchemaRegistryError, *DatabaseError) as exc:
            log.warning("outbox relay: cannot publish what is pending at stop (%s)", exc)
        with contextlib.suppress(*DatabaseError):
            log.warning(
                "outbox relay: %d event(s) left pending at stop; the next relay publishes them",
                self._outbox.pending_count(),
            )

    async def _keep_lease(self) -> None:
        assert self._lease is not None
        while True:
            await asyncio.sleep(self._lease.ttl / 5)
            self._hold_lease()

    def _hold_lease(self) -> None:
        """Renew the lease, or take it if it is free; note whether this relay holds it."""
        assert self._lease is not None
        lease = self._lease
        try:
            before = lease.holder()
            if before is not None and before.owner != lease.owner and not before.free(time.time()):
                if self._held_until:
                    log.warning(
                        "outbox relay %s lost the outbox lease to %s: this process was held up "
                        "longer than the lease",
                        lease.owner,
                        before.owner,
                    )
                self._held_until = 0.0
                return
            expires_at = lease.acquire()
        except DatabaseError as exc:
            # Not renewed: publishing stops by itself before the hold ends.
            log.warning("outbox relay %s cannot renew the outbox lease (%s)", lease.owner, exc)
            return
        self._held_until = expires_at or 0.0
        if expires_at is not None and (before is None or before.owner != lease.owner):
            previous = (
                "it was free"
                if before is None or before.owner is None
                else f"{before.owner} stopped renewing it"
            )
            log.info("outbox relay %s took the outbox lease (%s)", lease.owner, previous)
            self._check_kafka_first = self._new_consumer is not None

    def _release_lease(self) -> None:
        if self._lease is None or not self._held_until:
            return
        self._held_until = 0.0
        try:
            self._lease.release()
        except DatabaseError as exc:
            log.warning("outbox relay: cannot release the outbox lease (%s); it expires", exc)
            return
        log.info("outbox relay %s released the outbox lease", self._lease.owner)

    async def _mark_published(self) -> None:
        """Mark sent the pending rows that are on Kafka already.

        The relay before this one (or this one's last batch, which failed) may have got rows
        onto Kafka and not marked them: it died, or the acknowledgement never came. Those rows
        are among the first ``batch_size`` pending ones, and their records among the last
        records of their partitions, since only this service's relay writes its topics.
        """
        assert self._new_consumer is not None
        rows = self._outbox.pending(self._batch_size)
        if rows:
            records = await self._records(rows)
            wanted = {
                (row.topic, row.key, value): row.id
                for row, (value, _) in zip(rows, records, strict=True)
            }
            producer = await self._ensure_producer()
            partitions = [
                TopicPartition(topic, partition)
                for topic in sorted({row.topic for row in rows})
                for partition in sorted(
                    await asyncio.wait_for(producer.partitions_for(topic), self._send_timeout)
                )
            ]
            consumer = self._new_consumer()
            try:
                await asyncio.wait_for(consumer.start(), self._send_timeout)
                found = await asyncio.wait_for(
                    self._find_on_kafka(consumer, partitions, wanted), self._send_timeout
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(consumer.stop(), self._send_timeout)
            self._outbox.mark_sent(sorted(found))
            if found:
                log.info(
                    "outbox relay: %d pending event(s) were on Kafka already, marked sent",
                    len(found),
                )
        self._check_kafka_first = False

    async def _find_on_kafka(
        self,
        consumer: AIOKafkaConsumer,
        partitions: list[TopicPartition],
        wanted: dict[tuple[str, bytes, bytes], int],
    ) -> set[int]:
        """The row ids of ``wanted`` (by topic, key and value) in the ends of ``partitions``."""
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        starts = await consumer.beginning_offsets(partitions)
        for partition in partitions:
            consumer.seek(partition, max(starts[partition], ends[partition] - 2 * self._batch_size))
        found: set[int] = set()
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for partition, records in (await consumer.getmany(timeout_ms=200)).items():
                for record in records:
                    row_id = wanted.get((partition.topic, record.key, record.value))
                    if row_id is not None:
                        found.add(row_id)
        return found

    async def publish_pending(self) -> int:
        """Publish one batch of pending rows in order; return how many were sent.

        Raises:
            KafkaError: the broker refused or did not acknowledge; no row of the batch
                after the first unacknowledged one is marked sent.
            TimeoutError: the broker did not answer within the send time-out.
            SchemaRegistryUnavailable: the registry did not give a schema's id; nothing of
                the batch was sent.
        """
        if self._metrics is not None and time.monotonic() >= self._backlog_due:
            self._metrics.outbox_backlog.set(self._outbox.pending_count())
            self._backlog_due = time.monotonic() + _BACKLOG_COUNT_INTERVAL
        if self._claims is not None:
            with self._claims.claim(self._batch_size) as claimed:
                return await self._publish(claimed, self._claims.mark_sent)
        return await self._publish(self._outbox.pending(self._batch_size), self._outbox.mark_sent)

    async def _publish(self, rows: list[OutboxRow], mark_sent: Callable[[list[int]], None]) -> int:
        """Send ``rows`` in order and mark sent (with ``mark_sent``) those acknowledged."""
        if not rows:
            return 0
        records = await self._records(rows)
        producer = await self._ensure_producer()
        sending_since = time.time_ns()
        # Sends are queued in order and batched by the producer; the idempotent producer
        # keeps their order per partition even when it retries. Each row's publish latency
        # runs from its own send to its own acknowledgement.
        sends = _Sends()
        for row, (value, headers) in zip(rows, records, strict=True):
            sent_at = time.perf_counter()
            sends.add(sent_at, await producer.send(row.topic, value, key=row.key, headers=headers))
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
        try:
            await sends.settle(self._send_timeout)
        except OutOfOrderSequenceNumber:
            await self._drop_producer()  # only a new producer recovers from this (aiokafka #1017)
            raise
        finally:
            # Also when cancelled: whatever Kafka acknowledged so far is marked.
            acknowledged = sends.acknowledged()
            mark_sent([row.id for row in rows[:acknowledged]])
            if self._metrics is not None:
                for index, row in enumerate(rows[:acknowledged]):
                    self._metrics.published(
                        row.event_type,
                        row.topic,
                        sends.settled_at[index] - sends.sent_at[index],
                        len(records[index][0]),
                    )
            _report_published(rows, spans, acknowledged)
        return acknowledged

    async def _records(self, rows: list[OutboxRow]) -> list[tuple[bytes, list[tuple[str, bytes]]]]:
        """The value and headers each row goes onto Kafka with: framed with its schema's id
        when the relay has a registry, else as stored.

        Raises:
            SchemaRegistryError: the registry gave no id (the rows stay pending).
        """
        if self._schemas is None:
            return [(row.value, row.headers) for row in rows]
        ids = {
            event_type: await self._schemas.id_for(event_type)
            for event_type in {row.event_type for row in rows}
        }
        return [
            (frame(row.value, ids[row.event_type]), framed_headers(row.headers)) for row in rows
        ]

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
