"""Hostile records on every topic the stack consumes: nothing lost, nothing crashing.

Every domain topic gets the same garbage (values that are not Avro, unknown types and
versions, missing and garbled headers, empty and tombstone values, a record too large to
copy into the dead-letter topic...), then valid events for orders that do not exist. Every
consumer group of the stack's orchestrator must dead-letter each piece of garbage with its
reason and go on to handle the valid events as documented. All topics are written at once
and waited for once.

A header name that is not UTF-8 (Kafka takes any bytes there; clients other than Java's can
send them) arrives in one of two ways. Sent uncompressed, the broker recompresses the batch
to the topic's lz4 and writes the name again with replacement characters: the record can be
read, and lacks the header. Sent compressed with the topic's own codec, the broker keeps the
batch as it is and aiokafka cannot parse the record at all. That second case is proved on a
topic of its own, with an ``EventConsumer`` in the test process: on a shared topic it would
also break the readers that are not consumers (``saga dlq list``, ``saga projections
rebuild``) and the tests that read the topics.
"""

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import MessageSizeTooLargeError
from aiokafka.protocol.produce import ProduceRequest
from aiokafka.record.default_records import (
    DefaultRecordBatchBuilder,
    _DefaultRecordBatchBuilderPy,
)
from fastavro import schemaless_writer

from contracts import AnyEvent, encode_event, schema_for
from contracts.topics import TOPICS, TopicSpec, dlq_topic
from infra.config.settings import Settings, api_headers
from infra.engines.kafka_broker import KafkaBroker, apply_topic_catalog
from ops.dead_letters import DeadLetter, list_dead_letters
from orchestrator.choreography import AuditLog, Notifications
from orchestrator.timeline import Timeline
from runtime import Database, open_database
from tests.support.bus import bus_consumer, running
from tests.support.samples import sample_events

# The consumer groups of the orchestrator's worker (orchestrator/worker.py), by topic; the
# session's stack runs the incident webhook too (SAGA_INCIDENT_WEBHOOK_URL).
GROUPS_OF_TOPIC = {
    "order.events": {"orchestrator-projector", "audit", "notifications", "incident-webhook"},
    "payment.events": {"orchestrator-projector", "audit"},
    "inventory.events": {"orchestrator-projector", "audit"},
    "shipping.events": {"orchestrator-projector", "audit", "orchestrator-dispatch-bridge"},
}
# The valid event each topic gets after its garbage: one its consumers act on.
VALID_EVENT_OF_TOPIC = {
    "order.events": "order.completed.v1",
    "payment.events": "payment.completed.v1",
    "inventory.events": "inventory.reserved.v1",
    "shipping.events": "shipping.dispatched.v1",
}
DOMAIN_TOPICS = [spec.name for spec in TOPICS]
# Kafka's default limits (the embedded broker and aiokafka keep them): a producer request of
# at most 1 MiB, a record batch of at most 1 MiB plus 12 bytes.
MAX_REQUEST_BYTES = 1_048_576
_SAMPLES = sample_events()


@dataclass(frozen=True)
class Garbage:
    """One hostile record, and the ``dlq_reason`` every group must give it."""

    kind: str
    reason: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    too_large_to_copy: bool = False
    first_header_name: bytes | None = None
    """Bytes to name the first header with instead."""

    @property
    def raw(self) -> bool:
        """Whether the record must be sent as a record batch of the test's own making:
        aiokafka's producer takes neither header names that are not text, nor a record
        without key and value."""
        return self.first_header_name is not None or self.key is None is self.value


def _event(event_type: str, order_id: str) -> AnyEvent:
    """The sample event of ``event_type``, for ``order_id``, with a fresh event id."""
    sample = _SAMPLES[event_type]
    return sample.model_copy(
        update={
            "event_id": uuid.uuid4(),
            "correlation_id": order_id,
            "data": sample.data.model_copy(update={"order_id": order_id}),
        }
    )


def _near_limit_value(key: bytes, headers: list[tuple[str, bytes | None]]) -> bytes:
    """Random bytes that make the record 200 bytes short of what a producer may send: the
    broker takes it, but not with the dead-letter headers added."""
    value = os.urandom(MAX_REQUEST_BYTES)
    size = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return value[: len(value) - (size - (MAX_REQUEST_BYTES - 200))]


def _garbage(topic: str, run: str) -> list[Garbage]:
    """Every kind of hostile record, made for ``topic``."""
    event_type = VALID_EVENT_OF_TOPIC[topic]
    domain = event_type.partition(".")[0]
    encoded = encode_event(_event(event_type, f"{run}-sample"))
    headers: list[tuple[str, bytes | None]] = list(encoded.headers)

    def key(kind: str) -> bytes:
        return f"{run}:{topic}:{kind}".encode()

    def replaced(**new: bytes | None) -> list[tuple[str, bytes | None]]:
        return [(name, new.get(name, raw)) for name, raw in headers]

    # Avro that matches the schema, but not the model: the correlation id is another order's.
    forged = _event(event_type, f"{run}-forged").model_copy(update={"correlation_id": "other"})
    forged_value = BytesIO()
    schemaless_writer(
        forged_value,
        schema_for(event_type).parsed,
        forged.model_dump(mode="python", by_alias=True),
    )
    another_type = "order.placed.v1" if domain != "order" else "payment.completed.v1"
    junk = b"\x00\x01 this is not Avro"
    return [
        Garbage("not-avro", "not-avro", key("not-avro"), junk, headers),
        Garbage(
            "json-value",
            "not-avro",
            key("json-value"),
            json.dumps({"eventType": event_type, "data": {}}).encode(),
            headers,
        ),
        Garbage("truncated", "not-avro", key("truncated"), encoded.value[:-3], headers),
        Garbage("trailing-bytes", "not-avro", key("trailing"), encoded.value + b"\0", headers),
        Garbage(
            "valid-avro-invalid-event",
            "invalid-event",
            key("invalid-event"),
            forged_value.getvalue(),
            headers,
        ),
        Garbage(
            "unknown-event-type",
            "unknown-event-type",
            key("unknown-type"),
            encoded.value,
            replaced(
                event_type=f"{domain}.exploded.v1".encode(),
                schema_fingerprint=b"0123456789abcdef",
            ),
        ),
        Garbage(
            "unknown-version",
            "unknown-event-type",
            key("unknown-version"),
            encoded.value,
            replaced(
                event_type=event_type.replace(".v1", ".v9").encode(),
                schema_fingerprint=b"fedcba9876543210",
            ),
        ),
        Garbage(
            "unknown-fingerprint",
            "unknown-fingerprint",
            key("unknown-fingerprint"),
            encoded.value,
            replaced(schema_fingerprint=b"ffffffffffffffff"),
        ),
        Garbage(
            "fingerprint-of-another-type",
            "header-mismatch",
            key("other-fingerprint"),
            encoded.value,
            replaced(schema_fingerprint=schema_for(another_type).fingerprint.encode()),
        ),
        # Without the legacy headers a record must be framed, and a plain Avro body is not.
        Garbage("no-headers", "not-framed", key("no-headers"), encoded.value, []),
        Garbage(
            "no-content-type",
            "missing-header",
            key("no-content-type"),
            encoded.value,
            [(name, raw) for name, raw in headers if name != "content_type"],
        ),
        Garbage(
            "non-ascii-header",
            "garbled-header",
            key("non-ascii-header"),
            encoded.value,
            replaced(event_type=b"\xff\xfe" + event_type.encode()),
        ),
        Garbage(
            "non-utf8-header-name",
            "missing-header",
            key("non-utf8-header-name"),
            encoded.value,
            headers,
            first_header_name=b"\xff\xfe" + b"event_type",
        ),
        Garbage(
            "header-without-value",
            "garbled-header",
            key("header-without-value"),
            encoded.value,
            replaced(event_type=None),
        ),
        Garbage(
            "header-twice",
            "garbled-header",
            key("header-twice"),
            encoded.value,
            [*headers, ("event_type", f"{domain}.other.v1".encode())],
        ),
        Garbage(
            "json-content-type",
            "unsupported-content-type",
            key("json-content-type"),
            encoded.value,
            replaced(content_type=b"application/json"),
        ),
        Garbage("empty-value", "empty-value", key("empty-value"), b"", headers),
        Garbage("tombstone", "empty-value", key("tombstone"), None, headers),
        Garbage("tombstone-without-key", "empty-value", None, None, headers),
        Garbage("no-key", "not-avro", None, junk, headers),
        Garbage("binary-key", "not-avro", b"\xff\x00\xfe" * 1000, junk, headers),
        Garbage(
            "garbled-trace-headers",
            "not-avro",
            key("garbled-trace"),
            junk,
            [
                *headers,
                ("traceparent", b"\xff\x00-not-a-trace"),
                ("tracestate", b"=,=\xfe"),
                ("baggage", b"%%%;=;" * 2000),
            ],
        ),
        Garbage(
            "100-kB-header",
            "not-avro",
            key("big-header"),
            junk,
            [*headers, ("x-junk", b"x" * 100_000)],
        ),
        Garbage(
            "too-large-to-copy",
            "not-avro",
            key("near-limit"),
            _near_limit_value(key("near-limit"), headers),
            headers,
            too_large_to_copy=True,
        ),
    ]


KINDS = [garbage.kind for garbage in _garbage("order.events", "kinds")]


@dataclass
class HostileRun:
    """What was sent to the stack's topics, and what came of it."""

    run: str
    garbage: dict[tuple[str, str], tuple[Garbage, int]] = field(default_factory=dict)
    """(topic, kind) -> the record and its offset (all on partition 0)."""
    valid: dict[str, list[tuple[AnyEvent, int]]] = field(default_factory=dict)
    """topic -> the valid events sent after the garbage, and their offsets."""
    letters: dict[tuple[str, int], list[DeadLetter]] = field(default_factory=dict)
    """(topic, offset on partition 0) -> the dead letters of that record, one per group."""
    oversized: dict[str, tuple[str, str]] = field(default_factory=dict)
    """topic -> how the producer, then the broker, refused a 2 MB record."""
    oversized_key: bytes = b""
    seconds: float = 0.0


async def _until(
    condition: Callable[[], Awaitable[bool]], seconds: float, what: Callable[[], str]
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {seconds} s: {what()}")


async def _refusal(producer: AIOKafkaProducer, topic: str, key: bytes, value: bytes) -> str:
    with pytest.raises(MessageSizeTooLargeError) as refused:
        await producer.send_and_wait(topic, value, key=key, partition=0)
    return str(refused.value)


async def _send_oversized(bootstrap: str, run: HostileRun) -> None:
    """2 MB on every topic: refused by the producer itself, and by the broker when a
    producer is set to send it."""
    value = os.urandom(2 * 1024 * 1024)
    run.oversized_key = f"{run.run}:oversized".encode()
    ordinary = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    permissive = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=8 * 1024 * 1024
    )
    await ordinary.start()
    await permissive.start()
    try:
        for topic in DOMAIN_TOPICS:
            run.oversized[topic] = (
                await _refusal(ordinary, topic, run.oversized_key, value),
                await _refusal(permissive, topic, run.oversized_key, value),
            )
    finally:
        await ordinary.stop()
        await permissive.stop()


async def _committed(admin: AIOKafkaAdminClient, group: str, topic: str) -> int:
    partition = TopicPartition(topic, 0)
    offsets = await admin.list_consumer_group_offsets(group, partitions=[partition])
    found = offsets.get(partition)
    return found.offset if found is not None else -1


@pytest.fixture(scope="module")
async def hostile(stack: Settings) -> HostileRun:
    """Every kind of garbage, then two valid events, on partition 0 of every domain topic;
    returned once every consumer group has committed past the last valid event."""
    bootstrap = stack.kafka_bootstrap_servers
    run = HostileRun(run=f"hostile-{uuid.uuid4().hex[:8]}")
    started = time.monotonic()
    await _send_oversized(bootstrap, run)
    # lz4, as the topics are: the broker keeps the batches as they are, and the record
    # near the limit stays under it.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="lz4")
    await producer.start()
    try:
        for topic in DOMAIN_TOPICS:
            for garbage in _garbage(topic, run.run):
                if garbage.raw:
                    offset = await _send_raw_batch(bootstrap, topic, _raw_batch(garbage))
                else:
                    sent = await producer.send_and_wait(
                        topic, garbage.value, key=garbage.key, headers=garbage.headers, partition=0
                    )
                    offset = sent.offset
                run.garbage[topic, garbage.kind] = (garbage, offset)
            event_type = VALID_EVENT_OF_TOPIC[topic]
            # Valid events of orders that do not exist, the first with trace headers that
            # are not trace context at all.
            garbled_trace = [
                ("traceparent", b"00-zz-yy-01"),
                ("tracestate", b"\xff\xfe"),
                ("baggage", b"k=" + b"v" * 10_000),
            ]
            for order_id, extra in (
                (f"{run.run}-{topic}-traced", garbled_trace),
                (f"{run.run}-{topic}-unknown", []),
            ):
                event = _event(event_type, order_id)
                encoded = encode_event(event)
                sent = await producer.send_and_wait(
                    topic,
                    encoded.value,
                    key=encoded.key,
                    headers=[*encoded.headers, *extra],
                    partition=0,
                )
                run.valid.setdefault(topic, []).append((event, sent.offset))
    finally:
        await producer.stop()

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    behind: list[str] = []
    try:

        async def all_committed() -> bool:
            behind.clear()
            for topic, groups in GROUPS_OF_TOPIC.items():
                last = run.valid[topic][-1][1]
                for group in sorted(groups):
                    committed = await _committed(admin, group, topic)
                    if committed <= last:
                        behind.append(f"{group} on {topic}: {committed} <= {last}")
            return not behind

        await _until(all_committed, 60, lambda: "; ".join(behind))
    finally:
        await admin.close()
    run.seconds = time.monotonic() - started
    for letter in await list_dead_letters(bootstrap, DOMAIN_TOPICS):
        original_offset = letter.header("dlq_original_offset")
        # Every record of this run is on partition 0; other tests' records on other
        # partitions of the shared broker may sit at the same offsets.
        if original_offset is not None and letter.header("dlq_original_partition") == "0":
            position = (letter.original_topic, int(original_offset))
            run.letters.setdefault(position, []).append(letter)
    return run


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("topic", DOMAIN_TOPICS)
def test_each_hostile_record_is_dead_lettered_once_per_group_with_its_reason(
    hostile: HostileRun, topic: str, kind: str
) -> None:
    """Every consumer group of the topic sends the record to ``<topic>.dlq`` at once (no
    retries), with its reason, its position and, unless it is too large to copy, the record
    as it was."""
    garbage, offset = hostile.garbage[topic, kind]
    groups = GROUPS_OF_TOPIC[topic]
    # Consumers of other tests may share the topic: only the stack's groups count here.
    letters = [
        letter
        for letter in hostile.letters.get((topic, offset), [])
        if letter.header("dlq_consumer_group") in groups
    ]
    assert sorted(str(letter.header("dlq_consumer_group")) for letter in letters) == sorted(groups)
    for letter in letters:
        summary = letter.as_dict()
        json.dumps(summary)  # what `saga dlq list --json` prints
        assert letter.dlq_topic == dlq_topic(topic)
        assert summary["reason"] == garbage.reason, summary
        assert summary["attempts"] == "0"
        assert summary["original_topic"] == topic
        assert letter.header("dlq_original_partition") == "0"
        if garbage.too_large_to_copy:
            assert letter.value is None
            assert letter.key == garbage.key
            assert "too large for" in str(summary["dropped"])
            assert "MessageSizeTooLargeError" in str(summary["dropped"])
        else:
            assert summary["dropped"] is None
            assert letter.value == garbage.value
            # Kafka takes no record without key and value: such a one keeps an empty key.
            assert letter.key == (b"" if garbage.key is None is garbage.value else garbage.key)
            original = [(name, raw) for name, raw in letter.headers if not name.startswith("dlq_")]
            if garbage.first_header_name is None:
                assert original == garbage.headers
            else:
                # The broker recompressed the batch (the topic is lz4) and wrote the name
                # again, each byte that is not UTF-8 as U+FFFD.
                assert original[1:] == garbage.headers[1:]
                assert original[0][0] == "\ufffd\ufffdevent_type"


@pytest.mark.parametrize("topic", DOMAIN_TOPICS)
def test_the_valid_events_after_the_garbage_are_handled_by_every_group(
    hostile: HostileRun, topic: str
) -> None:
    """Each group committed past the valid events (the fixture waited for it) and
    dead-lettered neither: they were handled, garbled trace headers and all."""
    for _, offset in hostile.valid[topic]:
        groups = {d.header("dlq_consumer_group") for d in hostile.letters.get((topic, offset), [])}
        assert not groups & GROUPS_OF_TOPIC[topic]
    assert hostile.seconds < 60


@pytest.mark.parametrize("topic", DOMAIN_TOPICS)
def test_a_record_over_the_brokers_limit_is_refused_to_its_producer_and_never_consumed(
    hostile: HostileRun, topic: str
) -> None:
    """2 MB is over Kafka's 1 MiB default (the embedded broker and the topics keep it): the
    producer refuses to send it, and the broker refuses it from a producer allowed to send
    it; no consumer ever sees it, so there is no dead letter of it."""
    by_producer, by_broker = hostile.oversized[topic]
    assert "max_request_size" in by_producer
    assert "MESSAGE_SIZE_TOO_LARGE" in by_broker or "MessageSizeTooLarge" in by_broker
    assert not [
        letters
        for (letter_topic, _), letters in hostile.letters.items()
        if letter_topic == topic and any(d.key == hostile.oversized_key for d in letters)
    ]


async def test_events_of_unknown_orders_are_handled_as_each_consumer_documents(
    hostile: HostileRun, stack: Settings
) -> None:
    """A valid event of an order nobody placed: the projector keeps it in that order's
    timeline and the audit log appends it (both record what was on the bus), the API still
    knows no saga of that order (404), the dispatch bridge logs that there is no saga to
    signal, and the notification consumer records the customer notification it is built to
    send for every ``order.completed``."""
    timeline = Timeline(open_database(stack.run_dir / "orchestrator.db"))
    audit = AuditLog(open_database(stack.run_dir / "audit.db"))
    notifications = Notifications(open_database(stack.run_dir / "notifications.db"))
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=api_headers(stack)
    ) as api:
        for topic, sent in hostile.valid.items():
            for event, _ in sent:
                order_id = event.correlation_id
                assert [e.event_id for _, e in timeline.events_for(order_id)] == [
                    str(event.event_id)
                ]
                assert audit.event_types_for(order_id) == [event.event_type]
                answer = await api.get(f"/sagas/{order_id}")
                assert answer.status_code == 404, answer.text
                if topic == "order.events":
                    assert [kind for kind, _ in notifications.for_order(order_id)] == [
                        "order-completed"
                    ]
    log = (stack.run_dir / "logs" / "orchestrator.log").read_text(errors="replace")
    for event, _ in hostile.valid["shipping.events"]:
        ignored = f"saga of order {event.correlation_id} has ended: dispatch of {event.event_id}"
        assert ignored in log


# A record the Kafka client cannot parse: a header name that is not UTF-8. Kafka takes any
# bytes there (clients other than the Java one can send them); aiokafka's parser raises
# UnicodeDecodeError from getmany() for it.


async def _send_raw_batch(bootstrap: str, topic: str, batch: bytes) -> int:
    """Write a record batch to partition 0 of ``topic`` exactly as given; its offset."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.partitions_for(topic)
        leader = producer.client.cluster.leader_for_partition(TopicPartition(topic, 0))
        request = ProduceRequest(
            transactional_id=None, required_acks=-1, timeout=15000, topics=[(topic, [(0, batch)])]
        )
        response = await producer.client.send(leader, request)
        answers = [answer for _, partitions in response.topics for answer in partitions]
        assert [code for _, code, *_ in answers] == [0], response
        offset: int = answers[0][2]
        return offset
    finally:
        await producer.stop()


def _raw_batch(garbage: Garbage, *, lz4: bool = False) -> bytes:
    """A record batch of ``garbage`` alone, its first header named ``first_header_name``
    whatever its bytes; uncompressed (the broker recompresses it to the topic's lz4), or
    compressed with lz4 (the broker keeps it as it is)."""
    builder = _DefaultRecordBatchBuilderPy(
        magic=2,
        compression_type=(
            _DefaultRecordBatchBuilderPy.CODEC_LZ4
            if lz4
            else _DefaultRecordBatchBuilderPy.CODEC_NONE
        ),
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    name = garbage.first_header_name
    if name is None:
        builder.append(
            0, timestamp=None, key=garbage.key, value=garbage.value, headers=garbage.headers
        )
        return bytes(builder.build())
    placeholder = "\x01" * len(name)
    headers = [(placeholder, garbage.headers[0][1]), *garbage.headers[1:]]
    builder.append(0, timestamp=None, key=garbage.key, value=garbage.value, headers=headers)
    buffer: bytearray = builder._buffer
    at = buffer.find(placeholder.encode())
    buffer[at : at + len(placeholder)] = name
    return bytes(builder.build())


@pytest.fixture
async def own_topic(kafka_broker: KafkaBroker) -> AsyncIterator[str]:
    """A topic configured as the catalog's are, and its dead-letter topic, for this test
    alone."""
    topic = f"hostile-{uuid.uuid4().hex[:8]}.events"
    await apply_topic_catalog(
        kafka_broker.bootstrap_servers,
        [TopicSpec(name=topic, partitions=1), TopicSpec(name=dlq_topic(topic), partitions=1)],
    )
    yield topic


async def test_a_record_the_kafka_client_cannot_parse_is_dead_lettered_by_position_and_passed(
    kafka_broker: KafkaBroker, own_topic: str, tmp_path: Path
) -> None:
    """Valid, unparseable (a header name that is not UTF-8, in an lz4 batch the broker keeps
    as it is), valid: the consumer finds the record that breaks every fetch, dead-letters its
    position (its bytes cannot be read), and handles both valid events."""
    bootstrap = kafka_broker.bootstrap_servers
    before, after = (_event("payment.completed.v1", f"own-{n}-{uuid.uuid4()}") for n in (1, 2))
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        encoded = encode_event(before)
        await producer.send_and_wait(
            own_topic, encoded.value, key=encoded.key, headers=encoded.headers, partition=0
        )
        unparseable = Garbage(
            "unparseable",
            "unparseable-record",
            b"unparseable",
            b"\x00junk" * 100,  # lz4 gains on it, so aiokafka does not send it uncompressed
            [("name", b"x")],
            first_header_name=b"\xff\xfe\xfd\xfc",
        )
        batch = _raw_batch(unparseable, lz4=True)
        assert await _send_raw_batch(bootstrap, own_topic, batch) == 1
        encoded = encode_event(after)
        sent = await producer.send_and_wait(
            own_topic, encoded.value, key=encoded.key, headers=encoded.headers, partition=0
        )
    finally:
        await producer.stop()
    assert sent.offset == 2

    handled: list[str] = []

    async def handler(event: AnyEvent, db: Database) -> None:
        handled.append(event.correlation_id)

    consumer = bus_consumer(
        bootstrap, [own_topic], handler, open_database(tmp_path / "consumer.db")
    )
    async with running(consumer) as task:

        async def both_handled() -> bool:
            assert not task.done(), task
            return len(handled) == 2

        await _until(both_handled, 30, lambda: f"handled {handled}")
    assert handled == [before.correlation_id, after.correlation_id]
    letters = await list_dead_letters(bootstrap, [own_topic])
    assert [(d.header("dlq_reason"), d.header("dlq_original_offset")) for d in letters] == [
        ("unparseable-record", "1")
    ]
    assert "UnicodeDecodeError" in str(letters[0].header("dlq_error"))
    assert letters[0].value is None
    assert letters[0].as_dict()["key"] is None
