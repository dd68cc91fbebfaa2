"""Consumers of the real event bus for the system tests: a fresh consumer group of the
runtime's ``EventConsumer`` on a broker, running for the length of a block."""

import asyncio
import sqlite3
import uuid
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from runtime import EventConsumer, EventHandler, new_consumer, new_producer


def bus_consumer(
    bootstrap: str,
    topics: Iterable[str],
    handler: EventHandler,
    database: sqlite3.Connection,
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
