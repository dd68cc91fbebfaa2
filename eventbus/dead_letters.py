"""Reading dead letters back, and sending chosen ones to their original topic (redrive)."""

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from contracts.codec import EVENT_TYPE_HEADER
from contracts.topics import TOPICS, dlq_topic
from eventbus.clients import new_consumer, new_producer
from eventbus.consumer import DLQ_HEADER_PREFIX

__all__ = ["DeadLetter", "list_dead_letters", "redrive"]

_REDRIVEN_FROM = "redriven_from"


@dataclass(frozen=True)
class DeadLetter:
    """One record in a dead-letter topic, with why it is there."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]

    @property
    def position(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: how `saga dlq redrive` names it."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """A header's value as text, or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace")
        return None

    @property
    def original_topic(self) -> str:
        """The topic the record was consumed from."""
        return self.header("dlq_original_topic") or self.dlq_topic.removesuffix(".dlq")

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready summary."""
        return {
            "position": self.position,
            "original_topic": self.original_topic,
            "original_offset": self.header("dlq_original_offset"),
            "key": self.key.decode(errors="replace") if self.key else None,
            "event_type": self.header(EVENT_TYPE_HEADER),
            "reason": self.header("dlq_reason"),
            "error": self.header("dlq_error"),
            "attempts": self.header("dlq_attempts"),
            "consumer_group": self.header("dlq_consumer_group"),
            "failed_at": self.header("dlq_failed_at"),
            "redriven_from": self.header(_REDRIVEN_FROM),
        }


async def list_dead_letters(
    bootstrap_servers: str, topics: Iterable[str] | None = None
) -> list[DeadLetter]:
    """Every record now in the dead-letter topics (of ``topics``, or of every domain topic)."""
    dlqs = [dlq_topic(t) for t in (topics or [spec.name for spec in TOPICS])]
    partitions = await _partitions(bootstrap_servers, dlqs)
    if not partitions:
        return []
    consumer = new_consumer(bootstrap_servers, None, isolation_level="read_uncommitted")
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        letters: list[DeadLetter] = []
        remaining = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                letters += [
                    DeadLetter(tp.topic, tp.partition, r.offset, r.key, r.value, list(r.headers))
                    for r in records
                    if r.offset < ends[tp]
                ]
            remaining = {tp for tp in remaining if await consumer.position(tp) < ends[tp]}
        return sorted(letters, key=lambda d: (d.dlq_topic, d.partition, d.offset))
    finally:
        await _stop_groupless(consumer)


async def _partitions(bootstrap_servers: str, topics: list[str]) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(topics)
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    ]


async def _stop_groupless(consumer: AIOKafkaConsumer) -> None:
    """Stop a consumer without a group, which can leak its helper task's CancelledError."""
    try:
        await consumer.stop()
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise  # a real cancellation of ours, not aiokafka's own


async def redrive(bootstrap_servers: str, letters: Iterable[DeadLetter]) -> int:
    """Send each dead letter back to its original topic, as it was first published."""
    producer = new_producer(bootstrap_servers)
    await producer.start()
    try:
        count = 0
        for letter in letters:
            headers = [
                (k, v)
                for k, v in letter.headers
                if not k.startswith(DLQ_HEADER_PREFIX) and k != _REDRIVEN_FROM
            ]
            headers.append((_REDRIVEN_FROM, letter.position.encode()))
            await asyncio.wait_for(
                producer.send_and_wait(
                    letter.original_topic, letter.value, key=letter.key, headers=headers
                ),
                timeout=15,
            )
            count += 1
        return count
    finally:
        await asyncio.wait_for(producer.stop(), 15)
