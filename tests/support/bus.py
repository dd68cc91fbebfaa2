"""The real event bus for the system tests: a fresh consumer group of the runtime's
``EventConsumer`` running for the length of a block, and a reader of what the topics hold."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from contracts.topics import TOPICS
from runtime import Database, EventConsumer, EventHandler, new_consumer, new_producer


def bus_consumer(
    bootstrap: str,
    topics: Iterable[str],
    handler: EventHandler,
    database: Database,
    *,
    group_id: str | None = None,
    **options: Any,
) -> EventConsumer:
    """An ``EventConsumer`` of ``topics`` on the broker at ``bootstrap``, in the consumer group
    ``group_id`` (by default a fresh ``test-<uuid>``); ``options`` as ``EventConsumer`` takes."""
    return EventConsumer(
        group_id=group_id or f"test-{uuid.uuid4()}",
        topics=list(topics),
        handler=handler,
        database=database,
        consumer_factory=lambda group: new_consumer(bootstrap, group),
        producer_factory=lambda: new_producer(bootstrap),
        **options,
    )


@asynccontextmanager
async def running(consumer: EventConsumer) -> AsyncIterator[asyncio.Task[None]]:
    """``consumer`` running in a task until the block ends; the block gets the task."""
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def domain_partitions() -> list[TopicPartition]:
    """Every partition of every domain topic of the catalog."""
    return [TopicPartition(spec.name, p) for spec in TOPICS for p in range(spec.partitions)]


@asynccontextmanager
async def reader(
    bootstrap: str, partitions: list[TopicPartition]
) -> AsyncIterator[AIOKafkaConsumer]:
    """A consumer of no group on the broker at ``bootstrap``, assigned ``partitions`` (at their
    earliest record), stopped when the block ends."""
    consumer = new_consumer(bootstrap, None)
    await consumer.start()
    try:
        consumer.assign(partitions)
        yield consumer
    finally:
        await consumer.stop()


async def records_to_end(
    consumer: AIOKafkaConsumer, partitions: list[TopicPartition]
) -> AsyncIterator[ConsumerRecord[bytes, bytes]]:
    """Every record from the consumer's positions up to the ends ``partitions`` have now."""
    ends = await consumer.end_offsets(partitions)
    while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
        for records in (await consumer.getmany(timeout_ms=500)).values():
            for record in records:
                yield record
