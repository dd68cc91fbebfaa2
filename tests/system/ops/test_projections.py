"""Rebuilding the timeline from the real broker gives what the live projector gave, and
`saga projections rebuild` writes it and says what it did."""

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from contracts import (
    AnyEvent,
    Money,
    OrderCancelled,
    OrderCancelledData,
    OrderCompleted,
    OrderCompletedData,
    OrderLine,
    OrderPlaced,
    OrderPlacedData,
    PaymentCompleted,
    PaymentCompletedData,
    PaymentFailed,
    PaymentFailedData,
    PaymentRefunded,
    PaymentRefundedData,
    ShippingScheduled,
    ShippingScheduledData,
)
from contracts.codec import encode_event
from contracts.envelope import utc_now
from contracts.topics import TOPICS
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.schema_registry import SchemaRegistryServer
from ops.projections import RebuildProgress, rebuild_timeline
from orchestrator.timeline import Timeline, TimelineEntry
from runtime import (
    Database,
    Outbox,
    OutboxRelay,
    SchemaRegistry,
    new_producer,
    open_database,
    transaction,
)
from tests.support.bus import bus_consumer, domain_partitions, reader, records_to_end, running
from tests.support.cli import run_saga, without_settings

_TOTAL = Money(amount_minor=2598, currency="EUR")


def _placed(order_id: str, at: datetime) -> OrderPlaced:
    data = OrderPlacedData(
        order_id=order_id,
        customer_id="customer-7",
        items=[OrderLine(sku="SKU-1001", quantity=2, unit_price_minor=1299)],
        total=_TOTAL,
        shipping_country="DE",
    )
    return OrderPlaced(data=data, correlation_id=order_id, source="orchestrator", timestamp=at)


def _sagas(prefix: str) -> tuple[dict[str, list[AnyEvent]], OrderCompleted]:
    """Three orders' events in the order they happened, and the first order's last event.

    The third order's charge and refund share a millisecond: on one partition, their
    order is the log's.
    """
    t = utc_now()
    ms = timedelta(milliseconds=1)
    happy, declined, refunded = (f"{prefix}-{n}" for n in range(3))
    payment = PaymentCompletedData(order_id=refunded, payment_id="pay-3", amount=_TOTAL)
    events: dict[str, list[AnyEvent]] = {
        happy: [
            _placed(happy, t),
            PaymentCompleted(
                data=PaymentCompletedData(order_id=happy, payment_id="pay-1", amount=_TOTAL),
                correlation_id=happy,
                causation_id="cmd-1",
                source="payment-service",
                timestamp=t + 5 * ms,
            ),
            ShippingScheduled(
                data=ShippingScheduledData(
                    order_id=happy, shipment_id="shp-1", country="DE", carrier="dhl"
                ),
                correlation_id=happy,
                source="shipping-service",
                timestamp=t + 9 * ms,
            ),
        ],
        declined: [
            _placed(declined, t + ms),
            PaymentFailed(
                data=PaymentFailedData(
                    order_id=declined, payment_id="pay-2", amount=_TOTAL, reason="card declined"
                ),
                correlation_id=declined,
                source="payment-service",
                timestamp=t + 6 * ms,
            ),
            OrderCancelled(
                data=OrderCancelledData(
                    order_id=declined, reason="card declined", failed_step="charge_payment"
                ),
                correlation_id=declined,
                source="orchestrator",
                timestamp=t + 8 * ms,
            ),
        ],
        refunded: [
            _placed(refunded, t + 2 * ms),
            PaymentCompleted(
                data=payment,
                correlation_id=refunded,
                source="payment-service",
                timestamp=t + 7 * ms,
            ),
            PaymentRefunded(
                data=PaymentRefundedData(**payment.model_dump()),
                correlation_id=refunded,
                source="payment-service",
                timestamp=t + 7 * ms,
            ),
        ],
    }
    completed = OrderCompleted(
        data=OrderCompletedData(
            order_id=happy, payment_id="pay-1", reservation_id="res-1", shipment_id="shp-1"
        ),
        correlation_id=happy,
        source="orchestrator",
        timestamp=t + 20 * ms,
    )
    return events, completed


async def _publish(bootstrap: str, *events: AnyEvent) -> None:
    producer = new_producer(bootstrap)
    await producer.start()
    try:
        for event in events:
            encoded = encode_event(event)
            await asyncio.wait_for(
                producer.send_and_wait(
                    encoded.topic, encoded.value, key=encoded.key, headers=encoded.headers
                ),
                timeout=15,
            )
    finally:
        await asyncio.wait_for(producer.stop(), 15)


async def _publish_garbage(bootstrap: str, key: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(TOPICS[0].name, b"\x00not an event", key=key)
    finally:
        await producer.stop()


@asynccontextmanager
async def _live_projector(bootstrap: str, db: Database) -> AsyncIterator[None]:
    """The worker's projector: Timeline.project as a consumer group over every domain topic."""
    group_id = f"orchestrator-projector-{uuid.uuid4()}"
    topics = [spec.name for spec in TOPICS]
    async with running(
        bus_consumer(bootstrap, topics, Timeline(db).project, db, group_id=group_id)
    ):
        yield


async def _until(condition: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"condition not met within {seconds} s")


def _entries(timeline: Timeline, order_id: str) -> list[TimelineEntry]:
    return [entry for _, entry in timeline.events_for(order_id)]


def _in_another_thread(work: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run ``work`` to its end on an event loop of its own, as another process would."""
    with ThreadPoolExecutor(1) as pool:
        pool.submit(lambda: asyncio.run(work())).result(timeout=60)


async def test_a_rebuild_equals_the_live_projection_and_keeps_what_came_after(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    """Into the live database and into an empty one, a rebuild gives every order's events.

    The live projector keeps writing during the rebuild: its row for an event published
    after the rebuild noted the end offsets stays. A row whose event is on no topic goes,
    and a row that differs from the projection is rewritten in its place.
    """
    bootstrap = kafka_broker.bootstrap_servers
    prefix = f"rebuild-{uuid.uuid4()}"
    sagas, completed = _sagas(prefix)
    happy, declined, refunded = sagas
    await _publish(bootstrap, *[event for events in sagas.values() for event in events])
    await _publish(bootstrap, sagas[declined][1])  # the relay sent it twice
    await _publish_garbage(bootstrap, f"{prefix}-garbage".encode())

    live_path = tmp_path / "orchestrator.db"
    live_db = open_database(live_path, migrations=[Timeline.MIGRATIONS])
    timeline = Timeline(live_db)
    async with _live_projector(bootstrap, live_db):
        await _until(lambda: all(len(_entries(timeline, o)) == len(e) for o, e in sagas.items()))
    live = {order_id: timeline.events_for(order_id) for order_id in sagas}
    assert [[e.event_id for _, e in live[o]] for o in sagas] == [
        [str(event.event_id) for event in events] for events in sagas.values()
    ]

    gone = _placed(f"{prefix}-gone", utc_now())  # as if its record had passed retention
    await timeline.project(gone, live_db)
    tampered = str(sagas[refunded][1].event_id)
    live_db.execute("UPDATE timeline SET data = '{}' WHERE event_id = ?", (tampered,))
    seq_before = timeline.last_seq()

    async def live_projector_moves_on() -> None:
        await _publish(bootstrap, completed)
        db = open_database(live_path, migrations=[Timeline.MIGRATIONS])
        try:
            projector = Timeline(db)
            with transaction(db):
                await projector.project(completed, db)
        finally:
            db.close()

    reports: list[RebuildProgress] = []

    def progress(step: RebuildProgress) -> None:
        if not reports:  # the end offsets are noted: the saga's last event comes after them
            _in_another_thread(live_projector_moves_on)
        reports.append(step)

    report = await rebuild_timeline(bootstrap, live_db, progress=progress, progress_every=10)

    assert reports[0].read == 0
    assert reports[-1].read == report.records == reports[0].total
    assert report.skipped >= 1
    assert report.removed == 1
    assert timeline.events_for(gone.correlation_id) == []
    assert timeline.events_for(declined) == live[declined]
    assert timeline.events_for(refunded) == live[refunded]  # rewritten, in its place
    *rebuilt_happy, (late_seq, late) = timeline.events_for(happy)
    assert rebuilt_happy == live[happy]
    assert late.event_id == str(completed.event_id)
    assert late_seq > seq_before

    fresh_db = open_database(tmp_path / "fresh.db", migrations=[Timeline.MIGRATIONS])
    fresh_report = await rebuild_timeline(bootstrap, fresh_db)
    fresh = Timeline(fresh_db)
    for order_id in sagas:
        assert _entries(fresh, order_id) == _entries(timeline, order_id), order_id
    assert [e.event_type for e in _entries(fresh, refunded)] == [
        "order.placed.v1",
        "payment.completed.v1",
        "payment.refunded.v1",
    ]
    counts = fresh_db.execute("SELECT COUNT(*), COUNT(DISTINCT order_id) FROM timeline").fetchone()
    assert (fresh_report.events, fresh_report.orders) == tuple(counts)
    assert fresh_report.removed == 0
    assert fresh_report.skipped == report.skipped
    assert fresh_report.records > fresh_report.events  # the duplicate and the garbage


async def test_a_rebuild_reads_the_records_of_both_wire_formats(
    kafka_broker: KafkaBroker, schema_registry: SchemaRegistryServer, tmp_path: Path
) -> None:
    """Records written before the registry (the legacy format) come first on the topics, framed
    ones after (the relay with a registry): a rebuild from the beginning reads both, and each
    order's timeline has its events of either format, in order."""
    bootstrap = kafka_broker.bootstrap_servers
    prefix = f"formats-{uuid.uuid4()}"
    sagas, completed = _sagas(prefix)
    happy, declined, refunded = sagas
    before = [sagas[happy][0], sagas[happy][1], *sagas[declined]]
    after = [sagas[happy][2], completed, *sagas[refunded]]
    await _publish(bootstrap, *before)  # the legacy format, as published before the switch
    outbox_db = open_database(tmp_path / "service.db")
    outbox = Outbox(outbox_db)
    for event in after:
        with transaction(outbox_db):
            outbox.add(event)
    async with SchemaRegistry(schema_registry.url) as schemas:
        relay = OutboxRelay(outbox, lambda: new_producer(bootstrap), schemas=schemas)
        while await relay.publish_pending():
            pass
        await relay._drop_producer()

        content_types = {}
        partitions = domain_partitions()
        async with reader(bootstrap, partitions) as consumer:
            async for record in records_to_end(consumer, partitions):
                if (record.key or b"").startswith(prefix.encode()):
                    event_id = str((await schemas.decode(record.value, record.headers)).event_id)
                    content_types[event_id] = dict(record.headers)["content_type"]
        assert {content_types[str(e.event_id)] for e in before} == {b"application/avro"}
        assert {content_types[str(e.event_id)] for e in after} == {
            b"application/vnd.confluent.avro"
        }

        rebuilt_db = open_database(tmp_path / "rebuilt.db", migrations=[Timeline.MIGRATIONS])
        report = await rebuild_timeline(bootstrap, rebuilt_db, schemas=schemas)
    timeline = Timeline(rebuilt_db)
    assert [e.event_id for e in _entries(timeline, happy)] == [
        str(event.event_id) for event in [*sagas[happy], completed]
    ]
    for order_id in (declined, refunded):
        assert [e.event_id for e in _entries(timeline, order_id)] == [
            str(event.event_id) for event in sagas[order_id]
        ]
    assert report.events >= len(before) + len(after)


def _cli_env(tmp_path: Path, bootstrap: str, registry: str) -> dict[str, str]:
    return {
        **without_settings(),
        "SAGA_RUN_DIR": str(tmp_path / "run"),
        "SAGA_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SAGA_SCHEMA_REGISTRY_URL": registry,
    }


async def test_saga_projections_rebuild_writes_the_timeline_and_reports(
    kafka_broker: KafkaBroker, schema_registry: SchemaRegistryServer, tmp_path: Path
) -> None:
    """`saga projections rebuild` fills the run directory's timeline and says what it did."""
    sagas, _ = _sagas(f"cli-{uuid.uuid4()}")
    await _publish(
        kafka_broker.bootstrap_servers, *[e for events in sagas.values() for e in events]
    )
    env = _cli_env(tmp_path, kafka_broker.bootstrap_servers, schema_registry.url)

    result = await asyncio.to_thread(run_saga, env, "projections", "rebuild", "--json")

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report) == {"records", "events", "orders", "skipped", "removed", "seconds"}
    assert report["orders"] >= len(sagas)
    assert report["events"] >= sum(len(events) for events in sagas.values())
    assert "rebuilding the timeline in" in result.stderr
    assert re.search(rf"read {report['records']} of \d+ records", result.stderr), result.stderr
    timeline = Timeline(
        open_database(tmp_path / "run" / "orchestrator.db", migrations=[Timeline.MIGRATIONS])
    )
    for order_id, events in sagas.items():
        assert [e.event_id for e in _entries(timeline, order_id)] == [
            str(event.event_id) for event in events
        ]

    again = await asyncio.to_thread(run_saga, env, "projections", "rebuild")
    assert again.returncode == 0, again.stderr
    assert re.fullmatch(
        r"rebuilt the timeline of \d+ orders from \d+ events in \d+\.\d s( \(.*\))?\n",
        again.stdout,
    ), again.stdout
