"""The event bus's metrics, named as in design document 002, on a registry handed in."""

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EventBusMetrics", "SchemaRegistryMetrics"]


class EventBusMetrics:
    """Publish, consume, lag, dead-letter and outbox figures of one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_published = Counter(
            "events_published_total",
            "Total events published",
            ["event_type", "topic"],
            registry=registry,
        )
        self.published_bytes = Counter(
            "events_published_bytes_total",
            "Bytes of event values acknowledged by Kafka (the broker's bytes in, from our side)",
            ["topic"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "event_publish_latency_seconds",
            "Time from handing an event to the producer to the broker's acknowledgement",
            ["topic"],
            buckets=(0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
            registry=registry,
        )
        self.publish_errors = Counter(
            "events_publish_errors_total",
            "Batches the outbox relay could not publish (they stay pending and are sent again)",
            ["error"],
            registry=registry,
        )
        self.events_consumed = Counter(
            "events_consumed_total",
            "Total events consumed",
            ["event_type", "topic", "consumer_group"],
            registry=registry,
        )
        self.processing_duration = Histogram(
            "event_processing_duration_seconds",
            "Event processing duration",
            ["event_type"],
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 2, 5),
            registry=registry,
        )
        self.fetched_bytes = Counter(
            "kafka_consumer_fetched_bytes_total",
            "Bytes of record values fetched by a consumer group (the broker's bytes out)",
            ["topic", "consumer_group"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "kafka_consumer_lag",
            "Records of a partition not yet handled by the group: high watermark - position",
            ["topic", "partition", "consumer_group"],
            registry=registry,
        )
        self.commit_latency = Histogram(
            "kafka_consumer_commit_latency_seconds",
            "Time to commit a consumer group's offsets",
            ["consumer_group"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
            registry=registry,
        )
        self.dead_letters = Counter(
            "events_dead_lettered_total",
            "Records sent to a dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        self.duplicates = Counter(
            "events_duplicate_total",
            "Redelivered events dropped by the inbox",
            ["topic", "consumer_group"],
            registry=registry,
        )
        self.outbox_backlog = Gauge(
            "outbox_backlog",
            "Events written to the outbox and not yet published",
            registry=registry,
        )
        self._published_children: dict[tuple[str, str], tuple[Counter, Counter, Histogram]] = {}

    def published(self, event_type: str, topic: str, seconds: float, size: int = 0) -> None:
        """Count one acknowledged event of ``size`` bytes."""
        # The relay calls this for every event: the labelled children are looked up once.
        children = self._published_children.get((event_type, topic))
        if children is None:
            children = (
                self.events_published.labels(event_type, topic),
                self.published_bytes.labels(topic),
                self.publish_latency.labels(topic),
            )
            self._published_children[(event_type, topic)] = children
        events, size_total, latency = children
        events.inc()
        size_total.inc(size)
        latency.observe(seconds)

    def lag(self, consumer_group: str, topic: str, partition: int, records: int) -> None:
        """Set how far ``consumer_group`` is behind on one partition."""
        self.consumer_lag.labels(topic, str(partition), consumer_group).set(records)

    def forget_partitions(self, consumer_group: str, partitions: Iterable[tuple[str, int]]) -> None:
        """Drop the lag of partitions the group member no longer owns (another one reports it)."""
        for topic, partition in partitions:
            with contextlib.suppress(KeyError):
                self.consumer_lag.remove(topic, str(partition), consumer_group)


class SchemaRegistryMetrics:
    """What went wrong talking to the schema registry, by kind."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.errors = Counter(
            "schema_registry_errors_total",
            "Calls to the schema registry that failed: unreachable, timeout, server-error (5xx),"
            " refused (another 4xx)",
            ["kind"],
            registry=registry,
        )
