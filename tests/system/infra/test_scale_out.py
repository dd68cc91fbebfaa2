"""Two copies of every service and of the orchestrator's worker (`saga up --scale`) on one
Temporal and one Kafka: the work is shared, nothing happens twice, and a copy that is killed
or stopped hands its work and its outbox over to the other.

The stack has a Temporal namespace of its own on the session's server, so that its task
queues are its own, and a Kafka broker of its own: topics and consumer groups have fixed
names, and the session's stack must not consume this stack's events (nor this one theirs).
"""

import asyncio
import contextlib
import logging
import os
import signal
import sqlite3
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.coordinator.protocol import ConsumerProtocolMemberAssignment
from google.protobuf.duration_pb2 import Duration
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError

from contracts import PaymentCompleted
from contracts.activities import OrderSagaResult, saga_workflow_id
from contracts.codec import decode_event
from contracts.search_attributes import SEARCH_ATTRIBUTES
from infra.config.settings import Settings, api_headers
from infra.engines.kafka_broker import KafkaBroker
from infra.engines.processes import (
    ProcessRecord,
    ProcessTable,
    reserve_ports,
    stop_processes,
)
from infra.engines.schema_registry import SchemaRegistryServer
from infra.engines.stack import Stack, split_instance
from infra.engines.temporal_server import TemporalDevServer
from runtime import (
    Database,
    EventBusMetrics,
    Outbox,
    OutboxRelay,
    RelayLease,
    SchemaRegistry,
    new_consumer,
    new_producer,
    open_database,
    transaction,
)
from tests.support.bus import domain_partitions, reader, records_to_end
from tests.support.orders_api import order_body
from tests.support.saga_paths import HAPPY_EVENTS
from tests.support.samples import payment_completed
from tests.support.stacks import kafka_fixture, process_ports, running_broker, stack_settings
from workers.payment.ledger import PaymentLedger

SCALE = {"payment": 2, "inventory": 2, "shipping": 2, "orchestrator": 2}
COPIES = [
    "payment",
    "payment-2",
    "inventory",
    "inventory-2",
    "shipping",
    "shipping-2",
    "orchestrator",
    "orchestrator-2",
]
ORDERS = 40
"""Orders of the load that shows the work shared."""
FAULT_ORDERS = 24
"""Orders of each load that a copy is killed or stopped in the middle of."""
SKU = "SCALE-A"
PRICE = 700
GROUPS = ("orchestrator-projector", "orchestrator-dispatch-bridge", "audit", "notifications")
_STEP: int = Settings.model_fields["instance_port_step"].default
_OFFSET: int = Settings.model_fields["sdk_metrics_port_offset"].default


# -- relays on one database ------------------------------------------------------------------


scale_kafka = kafka_fixture(running_broker, "scale-kafka")
"""A broker of this module's own, with the topic catalog."""


def _payment(order_id: str, seq: int) -> PaymentCompleted:
    return payment_completed(order_id, f"pay-{seq}", amount_minor=seq)


@dataclass
class _Relay:
    """A relay on its own connection to the shared database, as a copy of a service has."""

    relay: OutboxRelay
    db: Database
    outbox: Outbox
    registry: CollectorRegistry
    task: "asyncio.Task[None] | None" = None

    @property
    def published(self) -> float:
        return (
            self.registry.get_sample_value(
                "events_published_total",
                {"event_type": "payment.completed.v1", "topic": "payment.events"},
            )
            or 0.0
        )

    def add(self, order_id: str, count: int) -> None:
        for seq in range(count):
            with transaction(self.db):
                self.outbox.add(_payment(order_id, seq))

    def start(self) -> None:
        self.task = asyncio.create_task(self.relay.run())

    async def stop(self) -> None:
        assert self.task is not None
        self.relay.stop()
        await asyncio.wait_for(self.task, 15)


def _relay(path: Path, bootstrap: str, owner: str) -> _Relay:
    db = open_database(path)
    outbox = Outbox(db)
    registry = CollectorRegistry()
    relay = OutboxRelay(
        outbox,
        lambda: new_producer(bootstrap),
        metrics=EventBusMetrics(registry),
        lease=RelayLease(db, owner, ttl=1.0),
        consumer_factory=lambda: new_consumer(bootstrap, None),
        idle_poll=0.05,
    )
    return _Relay(relay, db, outbox, registry)


async def _event_ids_on_kafka(bootstrap: str, order_id: str) -> Counter[str]:
    """How often each event of ``order_id`` is on ``payment.events``."""
    partitions = [TopicPartition("payment.events", p) for p in range(3)]
    seen: Counter[str] = Counter()
    async with reader(bootstrap, partitions) as consumer:
        async for record in records_to_end(consumer, partitions):
            if record.key == order_id.encode():
                seen[str(decode_event(record.value, record.headers).event_id)] += 1
    return seen


async def _until_published(outbox: Outbox, within: float = 30) -> None:
    deadline = time.monotonic() + within
    while outbox.pending_count():
        assert time.monotonic() < deadline, f"{outbox.pending_count()} rows still pending"
        await asyncio.sleep(0.05)


async def test_one_relay_per_database_publishes_and_a_successor_sends_nothing_twice(
    scale_kafka: KafkaBroker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Two relays on one outbox: one publishes; stopped, it flushes and hands the lease over
    at once; a holder that died after Kafka took some rows leaves them to its successor, who
    marks them sent rather than sending them again."""
    caplog.set_level(logging.INFO, logger="runtime._outbox")
    bootstrap = scale_kafka.bootstrap_servers
    path = tmp_path / "payment.db"
    order_id = f"lease-{uuid.uuid4().hex[:10]}"
    first, second = _relay(path, bootstrap, "first"), _relay(path, bootstrap, "second")
    first.start()
    await asyncio.sleep(0.1)  # the first takes the lease
    second.start()
    try:
        first.add(order_id, 10)
        second.add(order_id, 10)  # written by the copy that does not hold the lease
        await _until_published(first.outbox)
        assert (first.published, second.published) == (20, 0)

        # A graceful stop publishes what is pending, and releases the lease at once.
        second.add(order_id, 5)
        await first.stop()
        assert first.published == 25
        assert first.outbox.pending_count() == 0
        stopped = time.monotonic()
        second.add(order_id, 5)
        await _until_published(second.outbox)
        assert time.monotonic() - stopped < 1.0  # taken when released, not when it expired
        assert second.published == 5

        # Another relay holds the lease now (as if this one's process had been frozen past
        # it): this one stops publishing until the lease is free again.
        with transaction(second.db):
            second.db.execute(
                "UPDATE relay_lease SET owner = 'intruder', expires_at = ?", (time.time() + 1.5,)
            )
        await asyncio.sleep(0.4)  # the relay looks at the lease every fifth of it
        second.add(order_id, 3)
        await asyncio.sleep(0.5)
        assert second.outbox.pending_count() == 3
        assert "second lost the outbox lease to intruder" in caplog.text
        await _until_published(second.outbox)
        assert second.published == 8
        assert "second took the outbox lease (intruder stopped renewing it)" in caplog.text
        await second.stop()
    finally:
        for relay in (first, second):
            if relay.task is not None and not relay.task.done():
                relay.task.cancel()

    # A holder dies holding the lease after Kafka took 6 of its 10 rows: none was marked.
    with closing(open_database(path)) as db:
        assert RelayLease(db, "dead", ttl=1.0).acquire() is not None
        outbox = Outbox(db)
        with transaction(db):
            for seq in range(100, 110):
                outbox.add(_payment(order_id, seq))
        producer = new_producer(bootstrap)
        await producer.start()
        try:
            for row in outbox.pending()[:6]:
                await producer.send_and_wait(row.topic, row.value, key=row.key, headers=row.headers)
        finally:
            await producer.stop()
    successor = _relay(path, bootstrap, "successor")
    successor.start()
    try:
        await _until_published(successor.outbox, within=15)
        assert successor.published == 4
        await successor.stop()
    finally:
        if successor.task is not None and not successor.task.done():
            successor.task.cancel()
    assert "successor took the outbox lease (dead stopped renewing it)" in caplog.text
    assert "6 pending event(s) were on Kafka already" in caplog.text
    with closing(open_database(path)) as db:
        holder = RelayLease(db, "reader").holder()
    assert holder is not None and holder.owner is None  # released at stop

    on_kafka = await _event_ids_on_kafka(bootstrap, order_id)
    assert len(on_kafka) == 43
    assert set(on_kafka.values()) == {1}, "an event was published twice"


# -- the scaled stack ------------------------------------------------------------------------


async def _add_namespace(address: str, namespace: str) -> None:
    """Register ``namespace`` with the saga's search attributes; return once it is usable."""
    client = await Client.connect(address)
    await client.workflow_service.register_namespace(
        RegisterNamespaceRequest(
            namespace=namespace, workflow_execution_retention_period=Duration(seconds=86400)
        )
    )
    kinds = {
        name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
        for name, kind in SEARCH_ATTRIBUTES.items()
    }
    deadline = time.monotonic() + 60
    while True:
        try:
            # A new namespace reaches every part of the server within seconds: until then
            # these calls fail, and are tried again.
            with contextlib.suppress(RPCError):
                await client.operator_service.add_search_attributes(
                    AddSearchAttributesRequest(namespace=namespace, search_attributes=kinds)
                )
            scoped = await Client.connect(address, namespace=namespace)
            await scoped.count_workflows("SagaStatus = 'RUNNING'")
        except RPCError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)
        else:
            return


@dataclass(frozen=True)
class Scaled:
    """The scaled stack: its settings, its Stack and its process table."""

    settings: Settings
    stack: Stack
    table: ProcessTable

    def record(self, name: str) -> ProcessRecord:
        record = self.table.get(name)
        assert record is not None, name
        return record

    def log(self, name: str) -> str:
        return (self.settings.run_dir / "logs" / f"{name}.log").read_text(errors="replace")


@pytest.fixture(scope="module")
def scaled(
    scale_kafka: KafkaBroker,
    temporal_server: TemporalDevServer,
    schema_registry: SchemaRegistryServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Scaled]:
    """Two copies of each service and of the orchestrator worker, and the API."""
    run_dir = tmp_path_factory.mktemp("scaled-stack")
    namespace = f"scale-{uuid.uuid4().hex[:8]}"
    asyncio.run(_add_namespace(temporal_server.address, namespace))
    with reserve_ports() as ports:
        copy_ports = process_ports(ports, copies=2)
    settings = stack_settings(
        run_dir,
        {SKU: 100_000},
        kafka=scale_kafka.bootstrap_servers,
        temporal=temporal_server.address,
        registry=schema_registry.url,
        **copy_ports,
        temporal_namespace=namespace,
        carrier_dispatch_delay_seconds=0.5,
        startup_timeout_seconds=120,
    )
    stack = Stack(settings, say=lambda _: None, scale=SCALE)
    try:
        stack.up()
        yield Scaled(settings, stack, ProcessTable(run_dir))
    finally:
        stack.down()


@pytest.fixture(scope="module")
async def saga_client(scaled: Scaled) -> Client:
    return await Client.connect(
        scaled.settings.temporal_address,
        namespace=scaled.settings.temporal_namespace,
        data_converter=pydantic_data_converter,
    )


@pytest.fixture
async def api(scaled: Scaled) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(
        base_url=scaled.settings.api_url, timeout=30, headers=api_headers(scaled.settings)
    ) as client:
        yield client


def _order(order_id: str) -> dict[str, Any]:
    return order_body(order_id=order_id, customer_id="cust-scale", sku=SKU, unit_price=PRICE)


async def _place(api: httpx.AsyncClient, order_ids: list[str], *, every: float = 0.05) -> None:
    """Place the orders through the API, a little apart, as a steady load."""

    async def place(order_id: str) -> None:
        response = await api.post("/orders", json=_order(order_id))
        assert response.status_code == 202, response.text

    placing = []
    for order_id in order_ids:
        placing.append(asyncio.create_task(place(order_id)))
        await asyncio.sleep(every)
    await asyncio.gather(*placing)


async def _results(client: Client, order_ids: list[str]) -> dict[str, OrderSagaResult]:
    """Every order's saga result, once each has ended."""

    async def result(order_id: str) -> OrderSagaResult:
        handle = client.get_workflow_handle(saga_workflow_id(order_id), result_type=OrderSagaResult)
        ended: OrderSagaResult = await handle.result()
        return ended

    ended = await asyncio.wait_for(asyncio.gather(*(result(o) for o in order_ids)), timeout=150)
    return dict(zip(order_ids, ended, strict=True))


async def _events_on_kafka(
    settings: Settings, order_ids: list[str]
) -> dict[str, list[tuple[str, str]]]:
    """Every record of the orders on the domain topics as (event type, event id), once each
    order's ``order.completed`` is there (the relays may still be publishing)."""
    wanted = set(order_ids)
    partitions = domain_partitions()
    found: dict[str, list[tuple[str, str]]] = {}
    async with (
        SchemaRegistry.from_settings(settings) as schemas,
        reader(settings.kafka_bootstrap_servers, partitions) as consumer,
    ):
        for _ in range(150):
            async for record in records_to_end(consumer, partitions):
                if record.key is None or record.key.decode(errors="replace") not in wanted:
                    continue
                event = await schemas.decode(record.value, record.headers)
                found.setdefault(event.correlation_id, []).append(
                    (event.event_type, str(event.event_id))
                )
            if all(
                any(kind == "order.completed.v1" for kind, _ in found.get(o, [])) for o in order_ids
            ):
                # One more look a moment later: a second copy of an event would show now.
                await asyncio.sleep(1.0)
                ends = await consumer.end_offsets(partitions)
                if all([await consumer.position(tp) >= ends[tp] for tp in partitions]):
                    return found
                continue
            await asyncio.sleep(0.2)
    return found


async def _assert_each_order_once(scaled: Scaled, order_ids: list[str]) -> None:
    """Every saga completed; each order has each event of its path exactly once on Kafka
    (no event id twice) and exactly one charge in the payment ledger."""
    events = await _events_on_kafka(scaled.settings, order_ids)
    ids = [event_id for order in order_ids for _, event_id in events.get(order, [])]
    repeated = [event_id for event_id, n in Counter(ids).items() if n > 1]
    assert repeated == [], f"{len(repeated)} event(s) published twice"
    for order_id in order_ids:
        kinds = Counter(kind for kind, _ in events.get(order_id, []))
        assert kinds == Counter(HAPPY_EVENTS), (order_id, kinds)
    with closing(open_database(scaled.settings.run_dir / "payment.db")) as db:
        ledger = PaymentLedger(db)
        for order_id in order_ids:
            assert ledger.entries(order_id) == [("charge", PRICE)], order_id


def _lease_owner(scaled: Scaled, service: str) -> str | None:
    with closing(open_database(scaled.settings.run_dir / f"{service}.db")) as db:
        holder = RelayLease(db, "test-reader").holder()
    return None if holder is None else holder.owner


async def _lease_passes(scaled: Scaled, service: str, *, to: str) -> str:
    """The lease's holder once it is the copy ``to`` (or whoever holds it when the lease
    time, and ten seconds more, have passed)."""
    deadline = time.monotonic() + scaled.settings.outbox_lease_seconds + 10
    while True:
        owner = _lease_owner(scaled, service) or ""
        if owner.startswith(f"{to}:") or time.monotonic() > deadline:
            return owner
        await asyncio.sleep(0.2)


def _pending(scaled: Scaled, service: str) -> int:
    with closing(sqlite3.connect(scaled.settings.run_dir / f"{service}.db")) as db:
        count: int = db.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").fetchone()[0]
    return count


async def _activity_attempts(http: httpx.AsyncClient, url: str) -> float:
    text = (await http.get(url)).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "saga_step_attempts_total" and sample.labels.get("outcome") == "succeeded"
    )


async def _group_assignments(bootstrap: str) -> dict[str, list[list[TopicPartition]]]:
    """Each consumer group's members as the partitions each one owns, once every group is
    stable: a group that is rebalancing reports members with no assignment yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    deadline = time.monotonic() + 60
    try:
        while True:
            groups: dict[str, list[list[TopicPartition]]] = {}
            states: dict[str, str] = {}
            for group_id in GROUPS:
                # One group a call: aiokafka 0.14 misreads the answer about several.
                for response in await admin.describe_consumer_groups([group_id]):
                    for group in response.to_object()["groups"]:
                        states[group["group"]] = group["state"]
                        groups[group["group"]] = [
                            ConsumerProtocolMemberAssignment.decode(
                                member["member_assignment"]
                            ).partitions()
                            for member in group["members"]
                            if member["member_assignment"]
                        ]
            if set(states.values()) == {"Stable"} or time.monotonic() > deadline:
                return groups
            await asyncio.sleep(0.5)
    finally:
        await admin.close()


def _charges(scaled: Scaled, order_ids: list[str]) -> int:
    with closing(sqlite3.connect(scaled.settings.run_dir / "payment.db")) as db:
        marks = ",".join("?" * len(order_ids))
        count: int = db.execute(
            f"SELECT COUNT(*) FROM ledger_entries WHERE order_id IN ({marks})", order_ids
        ).fetchone()[0]
    return count


async def _when_charged(scaled: Scaled, order_ids: list[str], count: int) -> None:
    """Return once ``count`` of the orders have been charged: the load is under way."""
    deadline = time.monotonic() + 60
    while _charges(scaled, order_ids) < count:
        assert time.monotonic() < deadline, "the load never got going"
        await asyncio.sleep(0.05)


def _orders(tag: str, count: int = ORDERS) -> list[str]:
    return [f"scale-{tag}-{uuid.uuid4().hex[:10]}" for _ in range(count)]


async def test_copies_share_the_work_and_each_order_has_one_effect(
    scaled: Scaled, api: httpx.AsyncClient, saga_client: Client
) -> None:
    """Under load every copy runs activities, both members of each consumer group own
    partitions, one relay per database publishes, and each order happens once."""
    assert scaled.stack.instances() == [*COPIES, "api"]
    statuses = {s.name: s for s in scaled.stack.status()}
    for name in COPIES:
        assert statuses[name].state == "running", statuses[name]
    assert len({statuses[name].address for name in COPIES}) == len(COPIES)
    urls = {name: statuses[name].metrics[0] + "/" for name in COPIES}

    async with httpx.AsyncClient(timeout=10) as http:
        for name in COPIES:  # each copy's Temporal SDK exporter, on its own port
            sdk = await http.get(statuses[name].metrics[1])
            assert sdk.status_code == 200 and "temporal_" in sdk.text, name
        before = {name: await _activity_attempts(http, url) for name, url in urls.items()}
        order_ids = _orders("share")
        await _place(api, order_ids)
        results = await _results(saga_client, order_ids)
        assert {r.status for r in results.values()} == {"COMPLETED"}
        after = {name: await _activity_attempts(http, url) for name, url in urls.items()}
    ran = {name: after[name] - before[name] for name in COPIES}
    assert all(count > 0 for count in ran.values()), ran

    assignments = await _group_assignments(scaled.settings.kafka_bootstrap_servers)
    for group in GROUPS:
        members = assignments[group]
        assert len(members) == 2 and all(members), (group, members)
        owned = [tp for member in members for tp in member]
        assert len(owned) == len(set(owned)), (group, members)

    await _assert_each_order_once(scaled, order_ids)
    for service in ("payment", "inventory", "shipping", "orchestrator"):
        owner = _lease_owner(scaled, service)
        assert owner is not None and split_instance(owner.split(":")[0])[0] == service, owner
        assert _pending(scaled, service) == 0, service
    # The process's own name reaches its log lines.
    assert '"process": "payment-service-2"' in scaled.log("payment-2")


async def test_a_killed_copy_hands_its_lease_over_and_no_order_is_lost(
    scaled: Scaled, api: httpx.AsyncClient, saga_client: Client
) -> None:
    """SIGKILL the copy of payment whose relay holds the lease, mid-load: the other copy's
    relay takes the lease once it expires, every saga completes, nothing is published twice;
    `saga up` (scale kept in the run directory) then restarts exactly that copy."""
    owner = _lease_owner(scaled, "payment")
    assert owner is not None
    victim = scaled.record(owner.split(":")[0])
    survivor = "payment-2" if victim.name == "payment" else "payment"
    pids = {name: scaled.record(name).pid for name in [*COPIES, "api"]}

    order_ids = _orders("kill", FAULT_ORDERS)
    placing = asyncio.create_task(_place(api, order_ids))
    await _when_charged(scaled, order_ids, 6)
    os.kill(victim.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    await placing
    results = await _results(saga_client, order_ids)
    assert {r.status for r in results.values()} == {"COMPLETED"}
    # The sagas may finish before the dead holder's lease runs out (they need no event):
    # the survivor takes it over within the lease's time, not necessarily by now.
    new_owner = await _lease_passes(scaled, "payment", to=survivor)
    assert new_owner.startswith(f"{survivor}:"), new_owner
    assert "took the outbox lease" in scaled.log(survivor)
    await _assert_each_order_once(scaled, order_ids)
    print(f"sagas done {time.monotonic() - killed_at:.1f}s after the kill")

    # A Stack made without a scale keeps the one of the run directory, and starts only
    # what is missing: the killed copy.
    again = Stack(scaled.settings, say=lambda _: None)
    assert again.scale == SCALE
    await asyncio.to_thread(again.up)
    restarted = scaled.record(victim.name)
    assert restarted.pid != victim.pid and restarted.is_alive()
    assert {name: scaled.record(name).pid for name in pids if name != victim.name} == {
        name: pid for name, pid in pids.items() if name != victim.name
    }


async def test_a_copy_stopped_gracefully_mid_load_loses_and_repeats_nothing(
    scaled: Scaled, api: httpx.AsyncClient, saga_client: Client
) -> None:
    """SIGTERM the payment copy that holds the lease, mid-load: it finishes its activities,
    flushes its outbox and releases the lease at once; the other copy carries on."""
    owner = _lease_owner(scaled, "payment")
    assert owner is not None
    stopping = scaled.record(owner.split(":")[0])
    survivor = "payment-2" if stopping.name == "payment" else "payment"

    order_ids = _orders("stop", FAULT_ORDERS)
    placing = asyncio.create_task(_place(api, order_ids))
    await _when_charged(scaled, order_ids, 6)
    started = time.monotonic()
    stopped = await asyncio.to_thread(stop_processes, [stopping])
    took = time.monotonic() - started
    print(f"{stopping.name} stopped {took:.1f}s after SIGTERM")
    assert stopped == [stopping]
    await placing
    results = await _results(saga_client, order_ids)
    assert {r.status for r in results.values()} == {"COMPLETED"}

    log = scaled.log(stopping.name)
    assert took < 15, f"{stopping.name} took {took:.1f}s to stop: it was killed"
    assert "payment service stopped" in log
    assert "released the outbox lease" in log
    new_owner = _lease_owner(scaled, "payment")
    assert new_owner is not None and new_owner.startswith(f"{survivor}:"), new_owner
    await _assert_each_order_once(scaled, order_ids)
    assert _pending(scaled, "payment") == 0
