"""Reading dead letters back, and sending chosen ones to their original topic (redrive)."""

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from contracts.codec import EVENT_TYPE_HEADER
from contracts.topics import TOPICS, dlq_topic
from infra.config.kafka import KafkaTarget
from ops.snapshot import TopicSnapshot
from runtime import DLQ_DROPPED_HEADER, DLQ_HEADER_PREFIX, UNPARSEABLE_RECORD, new_producer

__all__ = ["DeadLetter", "list_dead_letters", "redrive"]

log = logging.getLogger(__name__)

_REDRIVEN_FROM = "redriven_from"


@dataclass(frozen=True)
class DeadLetter:
    """One record in a dead-letter topic, with why it is there."""

    dlq_topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]

    @property
    def position(self) -> str:
        """``<dlq topic>:<partition>:<offset>``: how `saga dlq redrive` names it."""
        return f"{self.dlq_topic}:{self.partition}:{self.offset}"

    def header(self, name: str) -> str | None:
        """A header's value as text (bytes that are not UTF-8 replaced), or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode(errors="replace") if value is not None else None
        return None

    @property
    def dropped(self) -> str | None:
        """What the dead letter had to leave out of the record (too large), if anything."""
        return self.header(DLQ_DROPPED_HEADER)

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
            "dropped": self.dropped,
        }


async def list_dead_letters(
    bootstrap_servers: KafkaTarget, topics: Iterable[str] | None = None
) -> list[DeadLetter]:
    """Every record now in the dead-letter topics (of ``topics``, or of every domain topic)."""
    dlqs = [dlq_topic(t) for t in (topics or [spec.name for spec in TOPICS])]
    async with TopicSnapshot(
        bootstrap_servers, dlqs, isolation_level="read_uncommitted"
    ) as snapshot:
        letters = [
            DeadLetter(r.topic, r.partition, r.offset, r.key, r.value, list(r.headers))
            async for r in snapshot.records()
        ]
    return sorted(letters, key=lambda d: (d.dlq_topic, d.partition, d.offset))


async def redrive(bootstrap_servers: KafkaTarget, letters: Iterable[DeadLetter]) -> int:
    """Send each dead letter back to its original topic, as it was first published.

    A dead letter that had to leave the record out (too large, or unparseable) is not sent:
    it would come back as an empty record. The record is still at its original position.

    Returns:
        How many were sent.
    """
    producer = new_producer(bootstrap_servers)
    await producer.start()
    try:
        count = 0
        for letter in letters:
            if letter.dropped is not None or letter.header("dlq_reason") == UNPARSEABLE_RECORD:
                log.warning(
                    "%s not redriven: it does not hold the record; read it at %s:%s:%s",
                    letter.position, letter.original_topic,
                    letter.header("dlq_original_partition"), letter.header("dlq_original_offset"),
                )  # fmt: skip
                continue
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
