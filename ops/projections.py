"""Rebuilding the orchestrator's read model, the order timelines, from the domain topics.

The live projector (a consumer group in the orchestrator's worker) only ever adds rows. A
rebuild reads every domain topic again from its beginning, without a group, and replaces
the timeline with what a fresh projector would make of those records: the rows of events
the topics no longer hold (after retention) go, rows the projection would now write
differently are rewritten, and the live projector may keep writing meanwhile.
"""

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

from contracts.envelope import AnyEvent
from contracts.errors import ContractError
from contracts.topics import TOPICS
from infra.config.kafka import KafkaTarget
from ops.snapshot import TopicSnapshot
from orchestrator.timeline import Timeline
from runtime import Database, SchemaRegistry, decode_record

__all__ = ["MissingTopicsError", "RebuildProgress", "RebuildReport", "rebuild_timeline"]

_DOMAIN_TOPICS = [spec.name for spec in TOPICS]


class MissingTopicsError(Exception):
    """A domain topic does not exist: not the stack's cluster, so the timeline is left alone."""


@dataclass(frozen=True)
class RebuildProgress:
    """How far the reading has got: ``read`` of the ``total`` records on the topics."""

    read: int
    total: int


@dataclass(frozen=True)
class RebuildReport:
    """What a rebuild read and wrote."""

    records: int
    """Records read from the domain topics."""
    events: int
    """Distinct events in the rebuilt timeline (a record published twice counts once)."""
    orders: int
    """Orders those events belong to."""
    skipped: int
    """Records that are not events; the live projector dead-lettered them."""
    removed: int
    """Rows dropped because the topics no longer hold their event."""
    seconds: float

    def as_dict(self) -> dict[str, int | float]:
        """The report as JSON-ready data."""
        return {**asdict(self), "seconds": round(self.seconds, 3)}

    def summary(self) -> str:
        """One line: how many orders from how many events, and what was skipped or removed."""
        notes = []
        if self.skipped:
            notes.append(
                f"{self.skipped} record(s) that are not events skipped, see `saga dlq list`"
            )
        if self.removed:
            notes.append(f"{self.removed} event(s) no longer on the topics removed")
        return (
            f"rebuilt the timeline of {self.orders} orders from {self.events} events "
            f"in {self.seconds:.1f} s" + (f" ({'; '.join(notes)})" if notes else "")
        )


async def rebuild_timeline(
    bootstrap_servers: KafkaTarget,
    database: Database,
    *,
    progress: Callable[[RebuildProgress], None] | None = None,
    progress_every: int = 1000,
    schemas: SchemaRegistry | None = None,
) -> RebuildReport:
    """Rebuild every order's timeline in ``database`` from the domain topics.

    Reads each domain topic from its beginning to where it ended when the rebuild began,
    decodes each record as the live projector does and writes the timeline in one
    transaction (see :meth:`Timeline.replace`). ``progress`` is called once the end
    offsets are noted, then every ``progress_every`` records and when all are read.
    Records of both wire formats are read: framed ones through ``schemas``, legacy ones
    (written before the registry) by their fingerprint.

    Raises:
        MissingTopicsError: a domain topic does not exist; nothing was changed.
        KafkaError: Kafka did not answer (``KafkaTimeoutError`` if it stopped mid-way).
        SchemaRegistryError: the registry could not resolve a schema id; nothing was changed.
    """
    started = time.perf_counter()
    timeline = Timeline(database)
    # Noted before the end offsets: every row up to here was projected from a record
    # before them, so such a row whose event the rebuild does not find is gone from Kafka.
    # Rows after it may come from records past the end offsets, and are kept.
    last_seq = timeline.last_seq()
    decoded: list[tuple[tuple[str, int, int], AnyEvent]] = []
    records = skipped = 0
    async with TopicSnapshot(bootstrap_servers, _DOMAIN_TOPICS) as snapshot:
        if snapshot.missing_topics:
            raise MissingTopicsError(
                f"Kafka at {bootstrap_servers} has no topic {', '.join(snapshot.missing_topics)}: "
                "is SAGA_KAFKA_BOOTSTRAP_SERVERS the stack's cluster? (`saga up` creates the "
                "topics); the timeline was left as it was"
            )
        if progress is not None:
            progress(RebuildProgress(0, snapshot.size))
        async for record in snapshot.records():
            records += 1
            try:
                event = await decode_record(schemas, record.value, record.headers)
            except ContractError:
                skipped += 1
            else:
                decoded.append(((record.topic, record.partition, record.offset), event))
            if progress is not None and records % progress_every == 0:
                progress(RebuildProgress(records, snapshot.size))
        if progress is not None and records % progress_every != 0:
            progress(RebuildProgress(records, snapshot.size))
    # In log order, first copy wins: what the live projector's inbox and INSERT OR IGNORE
    # keep, and the order it adds one partition's rows in.
    events: dict[str, AnyEvent] = {}
    for _, event in sorted(decoded, key=lambda found: found[0]):
        events.setdefault(str(event.event_id), event)
    removed = timeline.replace(list(events.values()), keep_after_seq=last_seq)
    return RebuildReport(
        records=records,
        events=len(events),
        orders=len({event.correlation_id for event in events.values()}),
        skipped=skipped,
        removed=removed,
        seconds=time.perf_counter() - started,
    )
