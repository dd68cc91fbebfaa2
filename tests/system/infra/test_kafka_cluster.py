"""The three-node KRaft cluster: the catalog at its production figures, and ``acks=all`` with
idempotence losing no acknowledged record when a leader dies, and acknowledging nothing when
two of the three nodes are down."""

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError

from contracts.topics import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, TOPICS, all_topics
from runtime import new_admin, new_consumer, new_producer
from tests.support.kafka_cluster import CLUSTER_NODES, ClusterProcesses, running_cluster
from tests.support.stacks import kafka_fixture

TOPIC = TOPICS[0].name
SEND_BOUND = 30.0
"""No single send is awaited longer (aiokafka's send can hang while brokers are down)."""
REFUSAL_BOUND = 15.0
"""How long a send to a partition without enough replicas is given to be acknowledged: three
times the producer's request time-out in that test."""


kafka_cluster = kafka_fixture(running_cluster, "kafka-cluster")
"""The module's three-node cluster, with the topic catalog."""


async def _partition(kafka: str, partition: int) -> dict[str, Any]:
    """What the cluster's metadata says of ``partition`` of ``TOPIC`` (leader, replicas, isr)."""
    admin = new_admin(kafka, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(admin.start(), 10)
        (topic,) = await asyncio.wait_for(admin.describe_topics([TOPIC]), 10)
    finally:
        await admin.close()
    (found,) = [p for p in topic["partitions"] if p["partition"] == partition]
    return dict(found)


async def _until(check: Callable[[], Awaitable[bool]], what: str, *, within: float) -> None:
    deadline = time.monotonic() + within
    while True:
        try:
            if await check():
                return
        except (KafkaError, OSError, TimeoutError):
            pass  # a node that is down or just back answers nothing useful yet
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:.0f} s waiting for {what}")
        await asyncio.sleep(0.5)


async def _count(items: list[int], at_least: int) -> bool:
    return len(items) >= at_least


async def _started(producer: AIOKafkaProducer) -> AIOKafkaProducer:
    await asyncio.wait_for(producer.start(), SEND_BOUND)
    return producer


async def _stop(producer: AIOKafkaProducer) -> None:
    # stop can hang while brokers are down (aiokafka #1101): the test is over by then anyway
    with contextlib.suppress(KafkaError, TimeoutError):
        await asyncio.wait_for(producer.stop(), SEND_BOUND)


async def _read_partition(kafka: str, partition: int, prefix: bytes) -> list[bytes]:
    """Every value in ``partition`` of ``TOPIC`` that starts with ``prefix``, in log order."""
    consumer = new_consumer(kafka, None)
    await asyncio.wait_for(consumer.start(), SEND_BOUND)
    try:
        tp = TopicPartition(TOPIC, partition)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), SEND_BOUND)
            values += [r.value for r in batch.get(tp, []) if r.value.startswith(prefix)]
        return values
    finally:
        await consumer.stop()


async def _topic_configs(
    admin: AIOKafkaAdminClient, names: list[str], *, within: float = 30.0
) -> dict[str, dict[str, str]]:
    """Every topic's configuration, asked again while a broker answers for a topic it does
    not know yet (an error and no entries: a topic just made reaches the brokers a moment
    apart)."""
    deadline = time.monotonic() + within
    while True:
        responses = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, name) for name in names]
        )
        resources = [resource for response in responses for resource in response.resources]
        failed = [resource[3] for resource in resources if resource[0] != 0]
        if not failed:
            return {resource[3]: dict(entry[:2] for entry in resource[4]) for resource in resources}
        assert time.monotonic() < deadline, f"no configuration of {failed}"
        await asyncio.sleep(0.5)


async def _topic_partitions(
    admin: AIOKafkaAdminClient, names: list[str], seconds: float = 30.0
) -> dict[str, Any]:
    """Each topic's description, once every topic shows its partitions: a topic just created
    can be described without them until its metadata reaches the broker asked."""
    deadline = time.monotonic() + seconds
    while True:
        described = {t["topic"]: t for t in await admin.describe_topics(names)}
        missing = sorted(name for name in names if not described.get(name, {}).get("partitions"))
        if not missing:
            return described
        assert time.monotonic() < deadline, f"no partitions described for {missing}"
        await asyncio.sleep(0.5)


async def test_three_brokers_carry_the_catalog_at_its_production_figures(
    kafka_cluster: ClusterProcesses,
) -> None:
    """The cluster has three brokers; every catalog topic has three replicas of each partition,
    all in sync, min ISR 2 and unclean leader election off."""
    admin = new_admin(kafka_cluster.bootstrap_servers, request_timeout_ms=10000)
    await admin.start()
    try:
        brokers = sorted(b["node_id"] for b in (await admin.describe_cluster())["brokers"])
        names = [spec.name for spec in all_topics()]
        described = await _topic_partitions(admin, names)
        configs = await _topic_configs(admin, names)
    finally:
        await admin.close()
    assert brokers == [1, 2, 3]
    assert (REPLICATION_FACTOR, MIN_INSYNC_REPLICAS) == (3, 2)
    for spec in all_topics():
        partitions = described[spec.name]["partitions"]
        assert len(partitions) == spec.partitions, spec.name
        for partition in partitions:
            assert sorted(partition["replicas"]) == brokers, (spec.name, partition)
            assert sorted(partition["isr"]) == brokers, (spec.name, partition)
    for name in names:
        assert configs[name]["min.insync.replicas"] == "2", name
        assert configs[name]["unclean.leader.election.enable"] == "false", name


async def test_no_acknowledged_record_is_lost_when_the_leader_is_killed(
    kafka_cluster: ClusterProcesses,
) -> None:
    """A numbered stream to one partition, its leader killed with SIGKILL half-way: every
    acknowledged record is in the log exactly once, and no record is there twice; the node
    started again rejoins the in-sync replicas."""
    kafka = kafka_cluster.bootstrap_servers
    partition = 0
    prefix = f"{uuid.uuid4().hex}:".encode()
    acknowledged: list[int] = []
    refused: list[BaseException] = []
    stop_producing = asyncio.Event()
    producer = await _started(new_producer(kafka, request_timeout_ms=10000))

    async def send(number: int) -> None:
        value = prefix + str(number).encode()
        try:
            await asyncio.wait_for(
                producer.send_and_wait(TOPIC, value, key=prefix, partition=partition), SEND_BOUND
            )
        except (KafkaError, TimeoutError) as exc:
            refused.append(exc)  # maybe written, maybe not: only acknowledged ones are promised
        else:
            acknowledged.append(number)

    async def produce() -> None:
        number = 0
        while not stop_producing.is_set():
            await asyncio.gather(*(send(number + i) for i in range(20)))
            number += 20

    before = await _partition(kafka, partition)
    leader = before["leader"]
    assert sorted(before["isr"]) == [1, 2, 3]
    producing = asyncio.create_task(produce())
    try:
        await _until(lambda: _count(acknowledged, 300), "300 acknowledged records", within=60)
        kafka_cluster.kill(leader)
        killed_at = len(acknowledged)

        async def new_leader() -> bool:
            state = await _partition(kafka, partition)
            return state["leader"] not in (leader, -1)

        await _until(new_leader, "a new leader of the partition", within=60)
        failed_over_at = len(acknowledged)
        await _until(
            lambda: _count(acknowledged, failed_over_at + 300),
            "300 more records acknowledged by the new leader",
            within=60,
        )
    finally:
        stop_producing.set()
        await producing
        await _stop(producer)

    try:
        values = await _read_partition(kafka, partition, prefix)
        numbers = [int(value[len(prefix) :]) for value in values]
        missing = sorted(set(acknowledged) - set(numbers))
        twice = sorted({n for n in numbers if numbers.count(n) > 1})
        assert missing == [], f"acknowledged but lost: {missing[:20]} ({len(missing)})"
        assert twice == [], f"written more than once: {twice[:20]} ({len(twice)})"
        assert len(set(acknowledged)) == len(acknowledged)

        kafka_cluster.start(leader)

        async def rejoined() -> bool:
            return sorted((await _partition(kafka, partition))["isr"]) == [1, 2, 3]

        await _until(rejoined, f"node {leader} back in the in-sync replicas", within=90)
    finally:
        await kafka_cluster.restore()
    print(  # shown with -s: how the run went
        f"leader {leader} killed after {killed_at} acknowledged; {len(acknowledged)} "
        f"acknowledged, {len(refused)} not ({sorted({type(e).__name__ for e in refused})}), "
        f"{len(numbers)} in the log"
    )


async def test_two_nodes_down_acknowledge_nothing_until_they_return(
    kafka_cluster: ClusterProcesses,
) -> None:
    """With two of the three nodes stopped, an ``acks=all`` send to the survivor's partition
    fails instead of being acknowledged; once they are back, a send is acknowledged."""
    kafka = kafka_cluster.bootstrap_servers
    partition = 1
    producer = await _started(new_producer(kafka, request_timeout_ms=5000))
    try:
        await asyncio.wait_for(
            producer.send_and_wait(TOPIC, b"before", partition=partition), SEND_BOUND
        )
        survivor = (await _partition(kafka, partition))["leader"]
        others = [node for node in range(1, CLUSTER_NODES + 1) if node != survivor]
        for node in others:
            await asyncio.to_thread(kafka_cluster.stop, node)
        assert kafka_cluster.running() == [survivor]

        with pytest.raises((KafkaError, TimeoutError)) as refused:
            await asyncio.wait_for(
                producer.send_and_wait(TOPIC, b"two down", partition=partition), REFUSAL_BOUND
            )
        seen = await _partition(kafka, partition)
        print(  # shown with -s: how the run went
            f"nodes {others} down, node {survivor} says leader {seen['leader']} "
            f"isr {seen['isr']}: {type(refused.value).__name__} {refused.value}"
        )

        await kafka_cluster.restore()
        sent_after: list[object] = []

        async def acknowledged() -> bool:
            sent_after.append(
                await asyncio.wait_for(
                    producer.send_and_wait(TOPIC, b"back", partition=partition), SEND_BOUND
                )
            )
            return True

        await _until(acknowledged, "a send acknowledged after the nodes returned", within=90)
        assert sent_after
    finally:
        await _stop(producer)
        await kafka_cluster.restore()


async def test_the_active_controller_is_found_and_another_takes_over_when_it_dies(
    kafka_cluster: ClusterProcesses,
) -> None:
    """The nodes record which of them is the active KRaft controller; killed, it is replaced
    by one of the two others, which the nodes record in turn."""
    controller = kafka_cluster.cluster.active_controller()
    assert controller in kafka_cluster.running()
    try:
        await asyncio.to_thread(kafka_cluster.kill, controller)

        async def replaced() -> bool:
            return kafka_cluster.cluster.active_controller() not in (None, controller)

        await _until(replaced, "another node to become the active controller", within=60)
        assert kafka_cluster.cluster.active_controller() in kafka_cluster.running()
    finally:
        await kafka_cluster.restore()
