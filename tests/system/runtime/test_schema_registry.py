"""The registry wire format against a real Apicurio Registry and a real broker: the catalog
registered once under its compatibility level, a breaking version refused, the relay waiting
out a registry that is away or failing (5xx, counted), and a record of an unknown schema id
dead-lettered."""

import asyncio
import dataclasses
import json
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from contracts import (
    EVENT_TYPES,
    FRAMED_CONTENT_TYPE,
    PaymentCompleted,
    encode_event,
    frame,
    framed_headers,
    schema_for,
    subject_for,
    topic_for_event_type,
)
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.postgres import stop_postgres
from infra.engines.processes import stop_process
from infra.engines.schema_registry import RegistryDatabase, SchemaRegistryServer
from ops.dead_letters import DeadLetter, list_dead_letters
from runtime import (
    CCOMPAT_PATH,
    Database,
    EventBusMetrics,
    IncompatibleSchema,
    Outbox,
    OutboxRelay,
    SchemaRegistry,
    SchemaRegistryMetrics,
    SchemaRegistryUnavailable,
    Where,
    new_producer,
    open_database,
    transaction,
)
from tests.support.bus import bus_consumer, domain_partitions, reader, records_to_end, running
from tests.support.postgres import running_postgres
from tests.support.samples import payment_completed
from tests.support.stacks import own_registry, start_broker, start_registry

TOPIC = topic_for_event_type(PaymentCompleted.EVENT_TYPE)


async def _until(condition: Callable[[], bool | Awaitable[bool]], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = condition()
        if result if isinstance(result, bool) else await result:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


def _sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    return metrics.get_sample_value(name, labels) or 0.0


async def test_the_catalog_registers_idempotently_under_its_compatibility_level(
    schema_registry: SchemaRegistryServer,
) -> None:
    """Every packaged schema gets an id; registered again (a second process) each keeps it,
    and every subject has the level the settings ask for."""
    async with SchemaRegistry(schema_registry.url, compatibility="FULL_TRANSITIVE") as first:
        ids = await first.register_catalog()
    async with SchemaRegistry(schema_registry.url, compatibility="FULL_TRANSITIVE") as second:
        assert await second.register_catalog() == ids
        assert await second.id_for("order.placed.v2") == ids["order.placed.v2"]
    assert set(ids) == set(EVENT_TYPES)
    assert len(set(ids.values())) == len(EVENT_TYPES)
    async with httpx.AsyncClient(base_url=schema_registry.url + CCOMPAT_PATH) as http:
        for event_type in EVENT_TYPES:
            subject = subject_for(event_type)
            config = (await http.get(f"/config/{subject}")).json()
            assert config["compatibilityLevel"] == "FULL_TRANSITIVE", subject
        versions = (await http.get(f"/subjects/{subject_for('order.placed.v1')}/versions")).json()
        assert versions == [1, 2]  # v1 then v2, in one subject
        by_id = (await http.get(f"/schemas/ids/{ids['order.placed.v1']}")).json()
    assert json.loads(by_id["schema"])["name"] == "OrderPlaced"


async def test_a_breaking_version_is_refused_naming_the_field(
    schema_registry: SchemaRegistryServer,
) -> None:
    """A v3 of order.placed that adds a field without a default breaks FULL_TRANSITIVE: the
    registry answers 409, and the error names the field."""
    v3 = json.loads(json.dumps(schema_for("order.placed.v2").definition))
    v3["eventType"], v3["eventVersion"] = "order.placed.v3", "3.0.0"
    v3["fields"][-1]["type"]["fields"].append({"name": "gift_note", "type": "string"})
    async with SchemaRegistry(schema_registry.url) as schemas:
        await schemas.register_catalog()
        with pytest.raises(IncompatibleSchema) as refused:
            await schemas.register_schema(v3)
        # With a default, the same field is a compatible new version.
        v3["fields"][-1]["type"]["fields"][-1]["default"] = ""
        v3["name"] = f"OrderPlacedTrial{uuid.uuid4().hex[:8]}"  # not left in the real subject
        assert await schemas.register_schema(v3) > 0
    message = str(refused.value)
    assert refused.value.event_type == "order.placed.v3"
    assert "gift_note" in message
    assert "field 'data.gift_note' added without a default" in message


async def test_the_relay_keeps_events_while_the_registry_is_away_and_publishes_after(
    own_kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """No registry: nothing is sent, the rows stay pending, the failures are counted. Once
    the registry is up the same relay publishes every row, framed with its schema's id.

    On a broker of its own: its records carry ids of its own registry, which the session's
    registry (and the session stack's consumers) would not know."""
    broker = await asyncio.to_thread(start_broker, own_kafka_broker)
    try:
        await _relay_waits_out_the_registry(own_kafka_broker, tmp_path)
    finally:
        stop_process(broker)


async def _relay_waits_out_the_registry(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    registry = own_registry(tmp_path / "registry")  # not started: nothing listens there
    metrics = CollectorRegistry()
    prefix = f"away-{uuid.uuid4()}"
    service_db = open_database(tmp_path / "service.db")
    outbox = Outbox(service_db)
    events = [payment_completed(f"{prefix}-{n}", f"pay-{n}", amount_minor=n) for n in range(3)]
    for event in events:
        with transaction(service_db):
            outbox.add(event)
    bootstrap = kafka_broker.bootstrap_servers
    schemas = SchemaRegistry(registry.url, metrics=SchemaRegistryMetrics(metrics))
    relay = OutboxRelay(
        outbox, lambda: new_producer(bootstrap), metrics=EventBusMetrics(metrics), schemas=schemas
    )
    relay_task = asyncio.create_task(relay.run())
    process = None
    try:
        await asyncio.sleep(1.5)
        assert outbox.pending_count() == 3
        assert _sample(metrics, "schema_registry_errors_total", kind="unreachable") >= 1
        assert (
            _sample(metrics, "events_publish_errors_total", error="SchemaRegistryUnavailable") >= 1
        )
        process = start_registry(registry)
        await _until(lambda: outbox.pending_count() == 0)
    finally:
        relay.stop()
        await asyncio.gather(relay_task, return_exceptions=True)
        try:
            found = await _records_of(bootstrap, prefix, schemas)
        finally:
            await schemas.aclose()
            if process is not None:
                stop_process(process)
    assert found == {str(event.event_id): event for event in events}


async def _records_of(bootstrap: str, prefix: str, schemas: SchemaRegistry) -> dict[str, object]:
    """The events of ``prefix``'s orders on TOPIC, checked to be framed, by event id."""
    partitions = [tp for tp in domain_partitions() if tp.topic == TOPIC]
    found: dict[str, object] = {}
    async with reader(bootstrap, partitions) as consumer:
        async for record in records_to_end(consumer, partitions):
            if not (record.key or b"").startswith(prefix.encode()):
                continue
            assert record.value is not None and record.value[0] == 0  # the magic byte
            headers = dict(record.headers)
            assert "schema_fingerprint" not in headers
            assert headers["content_type"] == FRAMED_CONTENT_TYPE.encode()
            event = await schemas.decode(record.value, record.headers)
            found[str(event.event_id)] = event
    return found


async def test_a_record_of_an_unknown_schema_id_is_dead_lettered_with_the_reason(
    kafka_broker: KafkaBroker,
    schema_registry: SchemaRegistryServer,
    database_at: Callable[[str], Where],
) -> None:
    """A framed record whose id the registry never gave goes to the dead-letter topic with
    reason unknown-schema-id; a good framed record after it is handled."""
    prefix = f"unknown-id-{uuid.uuid4()}"
    bootstrap = kafka_broker.bootstrap_servers
    bad = encode_event(payment_completed(f"{prefix}-1", "pay-1"))
    good_event = payment_completed(f"{prefix}-2", "pay-2")
    good = encode_event(good_event)
    handled: list[str] = []

    async def handler(event: object, db: Database) -> None:
        if getattr(event, "correlation_id", "").startswith(prefix):
            handled.append(event.correlation_id)  # type: ignore[attr-defined]

    async with SchemaRegistry(schema_registry.url) as schemas:
        good_id = await schemas.id_for(PaymentCompleted.EVENT_TYPE)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            for encoded, schema_id in ((bad, 2_000_000_123), (good, good_id)):
                await producer.send_and_wait(
                    TOPIC,
                    frame(encoded.value, schema_id),
                    key=encoded.key,
                    headers=framed_headers(encoded.headers),
                )
        finally:
            await producer.stop()
        consumer = bus_consumer(
            bootstrap, [TOPIC], handler, open_database(database_at("consumer")), schemas=schemas
        )
        letters: list[DeadLetter] = []

        async def dead_lettered() -> bool:
            # The session stack's consumers read the topic too, and dead-letter the record
            # as well: this consumer's own dead letters count.
            letters[:] = [
                letter
                for letter in await list_dead_letters(bootstrap, [TOPIC])
                if letter.key == bad.key
                and letter.header("dlq_consumer_group") == consumer.group_id
            ]
            return bool(letters)

        async with running(consumer):
            await _until(lambda: handled == [f"{prefix}-2"])
            await _until(dead_lettered)
    assert len(letters) == 1
    assert letters[0].header("dlq_reason") == "unknown-schema-id"
    assert "2000000123" in (letters[0].header("dlq_error") or "")


async def test_a_registry_that_is_away_is_unavailable_not_undecodable(tmp_path: Path) -> None:
    """Resolving an id while nothing listens is a transient error for the caller to retry."""
    registry = own_registry(tmp_path / "registry")
    async with SchemaRegistry(registry.url) as schemas:
        encoded = encode_event(payment_completed("order-away", "pay-1"))
        with pytest.raises(SchemaRegistryUnavailable):
            await schemas.decode(frame(encoded.value, 1), framed_headers(encoded.headers))


async def test_a_registry_whose_storage_fails_answers_5xx_the_relay_waits_and_it_is_counted(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """The registry of the cluster topology keeps its schemas in PostgreSQL. With PostgreSQL
    gone it still answers, with 500: the relay sends nothing, keeps its rows pending, and the
    answers are counted as server errors, apart from a registry that cannot be reached."""
    with running_postgres(["registry"]) as postgres:
        url = urlsplit(postgres.urls["registry"])
        assert url.hostname and url.port and url.username and url.password
        database = RegistryDatabase(url.hostname, url.port, "registry", url.username, url.password)
        registry = dataclasses.replace(own_registry(tmp_path / "registry"), database=database)
        process = start_registry(registry)
        try:
            stop_postgres(postgres.record)
            metrics = CollectorRegistry()
            service_db = open_database(tmp_path / "service.db")
            outbox = Outbox(service_db)
            with transaction(service_db):
                outbox.add(payment_completed(f"pg-gone-{uuid.uuid4()}", "pay-1", amount_minor=1))
            schemas = SchemaRegistry(registry.url, metrics=SchemaRegistryMetrics(metrics))
            bootstrap = kafka_broker.bootstrap_servers
            relay = OutboxRelay(
                outbox,
                lambda: new_producer(bootstrap),
                metrics=EventBusMetrics(metrics),
                schemas=schemas,
            )
            with pytest.raises(SchemaRegistryUnavailable, match="answered 500"):
                await relay.publish_pending()
            await schemas.aclose()
            assert outbox.pending_count() == 1
            assert _sample(metrics, "schema_registry_errors_total", kind="server-error") >= 1
            assert _sample(metrics, "schema_registry_errors_total", kind="unreachable") == 0
        finally:
            stop_process(process)
