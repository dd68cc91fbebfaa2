"""The embedded broker is a working Apache Kafka with the topic catalog applied."""

import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from contracts.topics import TOPICS, all_topics, dlq_topic
from infra.engines.kafka_broker import KafkaBroker, apply_topic_catalog, broker_version


async def test_a_produced_record_is_consumed(kafka_broker: KafkaBroker) -> None:
    """A record written to a catalog topic is read back with its key, value and headers."""
    topic = TOPICS[0].name
    key = f"order-{uuid.uuid4()}".encode()
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap_servers, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        sent = await producer.send_and_wait(topic, b"hello", key=key, headers=[("h", b"1")])
    finally:
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap_servers,
        group_id=f"test-{uuid.uuid4()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        consumer.assign([sent.topic_partition])
        consumer.seek(sent.topic_partition, sent.offset)
        record = await consumer.getone()
    finally:
        await consumer.stop()
    assert (record.key, record.value, list(record.headers)) == (key, b"hello", [("h", b"1")])


async def test_the_catalog_is_applied_with_its_partitions_and_configs(
    kafka_broker: KafkaBroker,
) -> None:
    """Every catalog topic exists with its partition count, compression and capped min ISR."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_broker.bootstrap_servers)
    await admin.start()
    try:
        described = {
            t["topic"]: t for t in await admin.describe_topics([s.name for s in all_topics()])
        }
        configs = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, TOPICS[0].name)]
        )
    finally:
        await admin.close()
    for spec in all_topics():
        assert described[spec.name]["error_code"] == 0, spec.name
        assert len(described[spec.name]["partitions"]) == spec.partitions, spec.name
    config = {entry[0]: entry[1] for entry in configs[0].resources[0][4]}
    assert config["compression.type"] == TOPICS[0].compression_type
    assert config["min.insync.replicas"] == "1"  # one broker: the catalog's 2 is capped
    assert config["retention.ms"] == str(TOPICS[0].retention_ms)
    assert dlq_topic(TOPICS[0].name) in described


async def test_applying_the_catalog_again_changes_nothing(kafka_broker: KafkaBroker) -> None:
    """A second application creates no topic and reports every topic as existing."""
    report = await apply_topic_catalog(kafka_broker.bootstrap_servers, all_topics())
    assert report.created == []
    assert report.existing == sorted(spec.name for spec in all_topics())


def test_the_broker_reports_its_apache_kafka_version(kafka_broker: KafkaBroker) -> None:
    """The broker's own start-up line names Apache Kafka and the configured version."""
    log = kafka_broker.data_dir / "broker.log"
    assert broker_version(log) == f"Apache Kafka {kafka_broker.libs.parent.name}"
