"""The event bus's metrics, named as in design document 002, on a registry handed in."""

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["EventBusMetrics"]


class EventBusMetrics:
    """Publish, consume, dead-letter and outbox figures of one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events_published = Counter(
            "events_published_total",
            "Total events published",
            ["event_type", "topic"],
            registry=registry,
        )
        self.publish_latency = Histogram(
            "event_publish_latency_seconds",
            "Time from handing a batch to the producer to the broker's acknowledgement",
            ["topic"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1, 5),
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

    def published(self, event_type: str, topic: str, seconds: float) -> None:
        """Count one acknowledged event."""
        self.events_published.labels(event_type, topic).inc()
        self.publish_latency.labels(topic).observe(seconds)
