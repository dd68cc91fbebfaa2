"""The event bus against the real broker: order, idempotency, retries, dead letters, outages."""

import asyncio
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import psycopg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from contracts.codec import encode_event
from contracts.envelope import AnyEvent
from contracts.events.payment import PaymentCompleted
from contracts.topics import topic_for_event_type
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.processes import stop_process
from ops.dead_letters import DeadLetter, list_dead_letters, redrive
from runtime import (
    Database,
    EventBusMetrics,
    EventConsumer,
    Outbox,
    OutboxClaims,
    OutboxRelay,
    RetryPolicy,
    Where,
    new_producer,
    open_database,
    transaction,
)
from tests.support.bus import bus_consumer, running
from tests.support.samples import payment_completed
from tests.support.stacks import start_broker

TOPIC = topic_for_event_type(PaymentCompleted.EVENT_TYPE)


def _payment(order_id: str, seq: int) -> PaymentCompleted:
    return payment_completed(order_id, f"pay-{seq}", amount_minor=seq)


class _Effects:
    """A handler that applies each event once to a table, and remembers what it saw."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.calls: list[tuple[str, float]] = []
        self.failing: set[str] = set()
        self._seq = itertools.count()

    async def __call__(self, event: AnyEvent, db: Database) -> None:
        if not event.correlation_id.startswith(self.prefix):
            return  # another test's event on the shared topic
        self.calls.append((event.data.payment_id, time.monotonic()))
        if event.data.payment_id in self.failing:
            raise RuntimeError(f"cannot handle {event.data.payment_id}")
        db.execute(
            "CREATE TABLE IF NOT EXISTS effects (seq INTEGER, order_id TEXT, payment_id TEXT)"
        )
        db.execute(
            "INSERT INTO effects VALUES (?, ?, ?)",
            (next(self._seq), event.correlation_id, event.data.payment_id),
        )


def _effects(db: Database) -> list[tuple[str, str]]:
    if not db.has_table("effects"):
        return []
    return [
        (r[0], r[1]) for r in db.execute("SELECT order_id, payment_id FROM effects ORDER BY seq")
    ]


@asynccontextmanager
async def _consuming(
    bootstrap: str,
    db: Database,
    handler: _Effects,
    metrics: EventBusMetrics | None = None,
) -> AsyncIterator[EventConsumer]:
    retry = RetryPolicy(attempts=3, first_backoff=0.1)
    consumer = bus_consumer(bootstrap, [TOPIC], handler, db, retry=retry, metrics=metrics)
    async with running(consumer):
        yield consumer


async def _until(condition: Callable[[], bool | Awaitable[bool]], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


async def _produce(
    bootstrap: str, *records: tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(TOPIC, value, key=key, headers=headers)
    finally:
        await producer.stop()


async def _mark_every_partition(bootstrap: str, order_prefix: str) -> set[str]:
    """Write one event to each partition of the topic; the orders they are of."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        orders = set()
        for partition in await producer.partitions_for(TOPIC):
            order_id = f"{order_prefix}-p{partition}"
            event = encode_event(_payment(order_id, 100 + partition))
            await producer.send_and_wait(
                TOPIC, event.value, key=event.key, headers=event.headers, partition=partition
            )
            orders.add(order_id)
        return orders
    finally:
        await producer.stop()


async def _relay_all(outbox: Outbox, bootstrap: str) -> None:
    relay = OutboxRelay(outbox, lambda: new_producer(bootstrap))
    while await relay.publish_pending():
        pass
    await relay._drop_producer()


async def test_per_key_order_holds_across_a_thousand_events(
    kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """A thousand events of ten orders, interleaved, are consumed in per-order order."""
    prefix = f"ord-{uuid.uuid4()}"
    service_db = open_database(database_at("service"))
    outbox = Outbox(service_db)
    for seq in range(1000):
        with transaction(service_db):
            outbox.add(_payment(f"{prefix}-{seq % 10}", seq))
    await _relay_all(outbox, kafka_broker.bootstrap_servers)
    assert outbox.pending_count() == 0

    handler = _Effects(prefix)
    consumer_db = open_database(database_at("consumer"))
    async with _consuming(kafka_broker.bootstrap_servers, consumer_db, handler):
        await _until(lambda: len(_effects(consumer_db)) == 1000)
    per_order: dict[str, list[int]] = {}
    for order_id, payment_id in _effects(consumer_db):
        per_order.setdefault(order_id, []).append(int(payment_id.removeprefix("pay-")))
    assert len(per_order) == 10
    for order_id, seqs in per_order.items():
        assert seqs == sorted(seqs), order_id
        assert len(seqs) == 100


@pytest.mark.postgres
async def test_two_claiming_relays_publish_one_outbox_in_parallel_in_per_order_order(
    kafka_broker: KafkaBroker, postgres_database: str, tmp_path: Path
) -> None:
    """Two relays claim rows of one PostgreSQL outbox at once (FOR UPDATE SKIP LOCKED, whole
    orders at a time): both publish, every event reaches Kafka once, and each order's events
    are consumed in the order they were written, across a thousand interleaved events."""
    prefix = f"claim-{uuid.uuid4()}"
    where = f"{postgres_database}?options=-csearch_path%3Dclaims_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres_database, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {where.rsplit('%3D', 1)[1]}")
    service_db = open_database(where)
    outbox = Outbox(service_db)
    for seq in range(1000):
        with transaction(service_db):
            outbox.add(_payment(f"{prefix}-{seq % 10}", seq))

    published: dict[str, int] = {}

    async def relay(name: str) -> None:
        claims = OutboxClaims(service_db.reopen())
        claiming = OutboxRelay(
            outbox,
            lambda: new_producer(kafka_broker.bootstrap_servers),
            claims=claims,
            batch_size=50,
        )
        while (sent := await claiming.publish_pending()) or outbox.pending_count():
            published[name] = published.get(name, 0) + sent
            await asyncio.sleep(0)
        await claiming._drop_producer()
        claims.close()

    await asyncio.gather(relay("first"), relay("second"))
    assert outbox.pending_count() == 0
    assert sum(published.values()) == 1000
    assert all(published.get(name, 0) > 0 for name in ("first", "second")), published

    handler = _Effects(prefix)
    consumer_db = open_database(tmp_path / "consumer.db")
    async with _consuming(kafka_broker.bootstrap_servers, consumer_db, handler):
        await _until(lambda: len(_effects(consumer_db)) == 1000)
    per_order: dict[str, list[int]] = {}
    for order_id, payment_id in _effects(consumer_db):
        per_order.setdefault(order_id, []).append(int(payment_id.removeprefix("pay-")))
    assert {order_id: len(seqs) for order_id, seqs in per_order.items()} == {
        f"{prefix}-{n}": 100 for n in range(10)
    }
    for order_id, seqs in per_order.items():
        assert seqs == sorted(seqs), order_id


async def test_a_redelivered_event_has_no_second_effect(
    kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """The same event delivered twice is applied once; the inbox counts the duplicate."""
    prefix = f"dup-{uuid.uuid4()}"
    encoded = encode_event(_payment(f"{prefix}-1", 1))
    marker = encode_event(_payment(f"{prefix}-1", 2))
    handler = _Effects(prefix)
    db = open_database(database_at("consumer"))
    metrics = EventBusMetrics(CollectorRegistry())
    async with _consuming(kafka_broker.bootstrap_servers, db, handler, metrics) as consumer:
        # The topic holds the session's earlier records too (a stack's relay may have sent
        # one of its own twice): count the duplicates from when the consumer has read every
        # partition up to a marker of this test's.
        duplicates = metrics.duplicates.labels(TOPIC, consumer.group_id)
        markers = await _mark_every_partition(kafka_broker.bootstrap_servers, f"{prefix}-0")
        await _until(lambda: {order for order, _ in _effects(db)} >= markers)
        before = duplicates._value.get()
        await _produce(
            kafka_broker.bootstrap_servers,
            (encoded.key, encoded.value, encoded.headers),
            (encoded.key, encoded.value, encoded.headers),
            (marker.key, marker.value, marker.headers),
        )
        await _until(lambda: len(_effects(db)) == len(markers) + 2)
    mine = [effect for effect in _effects(db) if effect[0] == f"{prefix}-1"]
    assert mine == [(f"{prefix}-1", "pay-1"), (f"{prefix}-1", "pay-2")]
    assert duplicates._value.get() - before == 1


async def test_a_poison_record_is_dead_lettered_after_three_attempts_and_the_rest_flows(
    kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """Three attempts 100 ms then 200 ms apart, then the DLQ; the record after it is handled."""
    prefix = f"poison-{uuid.uuid4()}"
    poison, after = _payment(f"{prefix}-1", 1), _payment(f"{prefix}-1", 2)
    await _produce(
        kafka_broker.bootstrap_servers,
        *[(e.key, e.value, e.headers) for e in map(encode_event, (poison, after))],
    )
    handler = _Effects(prefix)
    handler.failing.add("pay-1")
    db = open_database(database_at("consumer"))
    async with _consuming(kafka_broker.bootstrap_servers, db, handler):
        await _until(lambda: _effects(db) == [(f"{prefix}-1", "pay-2")])

    attempts = [at for payment_id, at in handler.calls if payment_id == "pay-1"]
    assert len(attempts) == 3
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert 0.1 <= gaps[0] < 0.3, gaps
    assert 0.2 <= gaps[1] < 0.45, gaps
    letters = [
        d
        for d in await list_dead_letters(kafka_broker.bootstrap_servers, [TOPIC])
        if d.key == poison.correlation_id.encode()
    ]
    assert len(letters) == 1
    info = letters[0].as_dict()
    assert info["reason"] == "handler-failed"
    assert info["attempts"] == "3"
    assert info["original_topic"] == TOPIC
    assert "cannot handle pay-1" in str(info["error"])


async def test_a_malformed_record_goes_straight_to_the_dead_letter_topic(
    kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """A record that is not an event is dead-lettered without calling the handler. Without
    headers it would have to be framed: its first byte is the magic byte, so its next four
    are read as a schema id that no registry gave (this consumer has none)."""
    key = f"garbage-{uuid.uuid4()}".encode()
    prefix = f"after-garbage-{uuid.uuid4()}"
    after = encode_event(_payment(f"{prefix}-1", 1))
    await _produce(
        kafka_broker.bootstrap_servers,
        (key, b"\x00not avro at all", []),
        (after.key, after.value, after.headers),
    )
    handler = _Effects(prefix)
    db = open_database(database_at("consumer"))
    letters: list[DeadLetter] = []
    async with _consuming(kafka_broker.bootstrap_servers, db, handler) as consumer:

        async def dead_lettered() -> bool:
            # Other consumer groups on the session's broker (a running stack's projector)
            # may dead-letter the same record: this consumer's own dead letters count.
            letters[:] = [
                d
                for d in await list_dead_letters(kafka_broker.bootstrap_servers, [TOPIC])
                if d.key == key and d.header("dlq_consumer_group") == consumer.group_id
            ]
            return bool(letters)

        # The two records have different keys, hence partitions: either may be handled first.
        await _until(lambda: len(_effects(db)) == 1)
        await _until(dead_lettered)
    assert [d.as_dict()["reason"] for d in letters] == ["unknown-schema-id"]
    assert letters[0].as_dict()["attempts"] == "0"
    assert letters[0].value == b"\x00not avro at all"
    assert handler.calls == [("pay-1", handler.calls[0][1])]


async def test_a_redriven_dead_letter_is_processed(
    kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """Once the cause is fixed, redrive sends the dead letter back and it is handled."""
    prefix = f"redrive-{uuid.uuid4()}"
    event = encode_event(_payment(f"{prefix}-1", 7))
    await _produce(kafka_broker.bootstrap_servers, (event.key, event.value, event.headers))
    handler = _Effects(prefix)
    handler.failing.add("pay-7")
    db = open_database(database_at("consumer"))
    async with _consuming(kafka_broker.bootstrap_servers, db, handler):

        async def dead_lettered() -> bool:
            letters = await list_dead_letters(kafka_broker.bootstrap_servers, [TOPIC])
            return any(d.key == event.key for d in letters)

        await _until(dead_lettered)
        assert _effects(db) == []
        handler.failing.clear()
        letters = [
            d
            for d in await list_dead_letters(kafka_broker.bootstrap_servers, [TOPIC])
            if d.key == event.key
        ]
        assert await redrive(kafka_broker.bootstrap_servers, letters) == 1
        await _until(lambda: _effects(db) == [(f"{prefix}-1", "pay-7")])


async def test_the_outbox_keeps_every_event_through_a_broker_outage(
    own_kafka_broker: KafkaBroker, database_at: Callable[[str], Where]
) -> None:
    """500 events wait in the outbox while the broker is down, then arrive in order, once."""
    broker = own_kafka_broker
    record = await asyncio.to_thread(start_broker, broker)
    bootstrap = broker.bootstrap_servers
    prefix = f"outage-{uuid.uuid4()}"
    service_db = open_database(database_at("service"))
    outbox = Outbox(service_db)
    relay = OutboxRelay(
        outbox, lambda: new_producer(bootstrap, request_timeout_ms=3000), send_timeout=3
    )
    relay_task = asyncio.create_task(relay.run())
    try:
        await asyncio.to_thread(stop_process, record)
        for seq in range(500):
            with transaction(service_db):
                outbox.add(_payment(f"{prefix}-{seq % 5}", seq))
            if seq % 100 == 0:
                await asyncio.sleep(0.2)  # the relay tries, and fails, while the broker is down
        assert outbox.pending_count() == 500
        record = await asyncio.to_thread(start_broker, broker)
        await _until(lambda: outbox.pending_count() == 0, seconds=120)
    finally:
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)

    handler = _Effects(prefix)
    consumer_db = open_database(database_at("consumer"))
    try:
        async with _consuming(bootstrap, consumer_db, handler):
            await _until(lambda: len(_effects(consumer_db)) >= 500, seconds=120)
            await asyncio.sleep(1)  # let any duplicate arrive, to prove it has no effect
    finally:
        await asyncio.to_thread(stop_process, record)
    effects = _effects(consumer_db)
    assert len(effects) == 500
    assert len({payment_id for _, payment_id in effects}) == 500
    for order in range(5):
        seqs = [int(p.removeprefix("pay-")) for o, p in effects if o == f"{prefix}-{order}"]
        assert seqs == list(range(order, 500, 5))


def _drop_connection(db: Database, postgres_url: str) -> None:
    """Close ``db``'s connection from the server's side, as a PostgreSQL restart does."""
    pid = db.execute("SELECT pg_backend_pid()").fetchone()[0]
    killer = open_database(postgres_url)
    try:
        killer.execute("SELECT pg_terminate_backend(?)", (pid,))
    finally:
        killer.close()


class _DropsConnection(_Effects):
    """Handles like :class:`_Effects`, but first drops the connection it writes on, as many
    times as the consumer makes attempts: a database away for longer than its retries."""

    def __init__(self, prefix: str, postgres_url: str, times: int) -> None:
        super().__init__(prefix)
        self._url = postgres_url
        self._drops = times

    async def __call__(self, event: AnyEvent, db: Database) -> None:
        if self._drops and event.correlation_id.startswith(self.prefix):
            self._drops -= 1
            _drop_connection(db, self._url)
        await super().__call__(event, db)


@pytest.mark.postgres
async def test_an_event_whose_database_connection_drops_is_read_again_not_dead_lettered(
    kafka_broker: KafkaBroker, postgres_database: str
) -> None:
    """The handler's PostgreSQL connection is lost in the middle of its transaction (a server
    restart), as often as the consumer has attempts: the record is read again on a new
    connection and handled once, and no dead letter is written, since the fault was the
    database's, not the record's."""
    prefix = f"drop-{uuid.uuid4()}"
    event = encode_event(_payment(f"{prefix}-1", 1))
    await _produce(kafka_broker.bootstrap_servers, (event.key, event.value, event.headers))
    handler = _DropsConnection(prefix, postgres_database, times=3)
    db = open_database(postgres_database, schema=f"drop_{uuid.uuid4().hex[:12]}")
    async with _consuming(kafka_broker.bootstrap_servers, db, handler):
        await _until(lambda: _effects(db) == [(f"{prefix}-1", "pay-1")])

    assert [payment_id for payment_id, _ in handler.calls] == ["pay-1"] * 4
    letters = await list_dead_letters(kafka_broker.bootstrap_servers, [TOPIC])
    assert [d for d in letters if d.key == f"{prefix}-1".encode()] == []


@pytest.mark.postgres
async def test_the_relay_outlives_its_database_connection_being_dropped(
    kafka_broker: KafkaBroker, postgres_database: str
) -> None:
    """The relay's outbox connection is lost (a PostgreSQL restart): the relay keeps running
    and publishes what is written afterwards."""
    prefix = f"relay-drop-{uuid.uuid4()}"
    service_db = open_database(postgres_database, schema=f"relay_{uuid.uuid4().hex[:12]}")
    outbox = Outbox(service_db)
    bootstrap = kafka_broker.bootstrap_servers
    relay = OutboxRelay(outbox, lambda: new_producer(bootstrap), send_timeout=10)
    relay_task = asyncio.create_task(relay.run())
    try:
        with transaction(service_db):
            outbox.add(_payment(f"{prefix}-1", 1))
        await _until(lambda: outbox.pending_count() == 0)
        _drop_connection(service_db, postgres_database)
        await asyncio.sleep(1.0)  # the relay polls the dropped connection meanwhile
        with transaction(service_db):
            outbox.add(_payment(f"{prefix}-1", 2))
        await _until(lambda: outbox.pending_count() == 0)
        assert not relay_task.done()
    finally:
        relay_task.cancel()
        await asyncio.gather(relay_task, return_exceptions=True)
