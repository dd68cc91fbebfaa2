"""Reading whole topics without a consumer group, up to where they ended when the reading began.

What `saga dlq list` and the projection rebuild share: no group, so no offsets are committed
and no live consumer is disturbed; a fixed end, so a topic that keeps growing is still read
to an end.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable
from typing import Any, Self

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, KafkaTimeoutError

from infra.config.kafka import KafkaTarget
from runtime import new_admin, new_consumer

__all__ = ["TopicSnapshot", "stop_groupless", "topic_partitions"]


async def topic_partitions(
    bootstrap_servers: KafkaTarget, topics: Iterable[str]
) -> list[TopicPartition]:
    """Every partition of those ``topics`` that exist (a missing topic has none)."""
    admin = new_admin(bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return sorted(
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        if topic["error_code"] == 0
        for partition in topic["partitions"]
    )


async def stop_groupless(consumer: AIOKafkaConsumer, seconds: float = 10.0) -> None:
    """Stop a consumer without a group, within ``seconds`` even while Kafka is away.

    Such a consumer can leak its helper task's CancelledError from ``stop()``: that one is
    dropped, a real cancellation of the caller goes on.
    """
    try:
        async with asyncio.timeout(seconds):
            await consumer.stop()
    except (asyncio.CancelledError, KafkaError, TimeoutError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise


class TopicSnapshot:
    """The records of some topics from their beginning to the end offsets noted on entry.

    ``async with TopicSnapshot(servers, topics) as snapshot:`` notes the end offsets, then
    ``async for record in snapshot.records()`` reads up to them; records published after
    entry are not read.
    """

    def __init__(
        self,
        bootstrap_servers: KafkaTarget,
        topics: Iterable[str],
        *,
        stall_seconds: float = 30.0,
        **consumer_overrides: Any,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._topics = list(topics)
        self._stall_seconds = stall_seconds
        self._overrides = consumer_overrides
        self._consumer: AIOKafkaConsumer | None = None
        self.end_offsets: dict[TopicPartition, int] = {}
        """Where each partition ended on entry: the first offset not read."""
        self.missing_topics: list[str] = []
        """Topics of the snapshot that do not exist on the cluster."""
        self.size = 0
        """How many offsets lie between the partitions' beginnings and ends (records to read)."""

    async def __aenter__(self) -> Self:
        partitions = await topic_partitions(self._bootstrap_servers, self._topics)
        found = {tp.topic for tp in partitions}
        self.missing_topics = [topic for topic in self._topics if topic not in found]
        if not partitions:
            return self
        consumer = new_consumer(self._bootstrap_servers, None, **self._overrides)
        await consumer.start()
        try:
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            beginnings = await consumer.beginning_offsets(partitions)
            self.end_offsets = await consumer.end_offsets(partitions)
        except BaseException:
            await stop_groupless(consumer)
            raise
        self._consumer = consumer
        self.size = sum(self.end_offsets[tp] - beginnings[tp] for tp in partitions)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            await stop_groupless(consumer)

    async def records(self) -> AsyncIterator[ConsumerRecord]:
        """Every record up to the noted end offsets, in offset order within each partition.

        Raises:
            KafkaTimeoutError: no partition moved for ``stall_seconds`` (the cluster is gone).
        """
        consumer = self._consumer
        if consumer is None:
            return
        ends = self.end_offsets
        remaining = {tp for tp in ends if ends[tp] > await consumer.position(tp)}
        loop = asyncio.get_running_loop()
        last_move = loop.time()
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, batch in batches.items():
                for record in batch:
                    if record.offset < ends[tp]:
                        yield record
            moved = bool(batches)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
                    moved = True
            if moved:
                last_move = loop.time()
            elif loop.time() - last_move > self._stall_seconds:
                raise KafkaTimeoutError(
                    f"no record of {', '.join(sorted(str(tp) for tp in remaining))} "
                    f"within {self._stall_seconds:.0f} s"
                )
