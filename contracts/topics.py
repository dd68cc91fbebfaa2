"""The topic catalog: the single place that says which Kafka topics exist.

One topic per domain (``payment.events``), not per event type, so that all of one
service's events about one order share a partition (the record key is the order id)
and are read in the order they happened: a ``payment.refunded`` can never overtake
the ``payment.completed`` it undoes. Each topic has a dead-letter twin ``<topic>.dlq``.

Replication figures are the production ones (design document 002: replication factor 3,
``min.insync.replicas`` 2); a smaller cluster, such as the one-node embedded broker, gets
them capped to its broker count when the catalog is applied.
"""

from dataclasses import dataclass, field

__all__ = [
    "DLQ_SUFFIX",
    "DOMAINS",
    "MIN_INSYNC_REPLICAS",
    "REPLICATION_FACTOR",
    "TOPICS",
    "TopicSpec",
    "all_topics",
    "dlq_topic",
    "topic_for_event_type",
]

_SEVEN_DAYS_MS = 7 * 24 * 3600 * 1000
_THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000

DLQ_SUFFIX = ".dlq"

REPLICATION_FACTOR = 3
"""Copies of every record on a cluster of three brokers or more (design document 002)."""
MIN_INSYNC_REPLICAS = 2
"""Copies that must have a record before an ``acks=all`` write of it is acknowledged."""


@dataclass(frozen=True)
class TopicSpec:
    """How one topic is configured: partitions, retention, compression and durability."""

    name: str
    partitions: int = 3
    retention_ms: int = _SEVEN_DAYS_MS
    compression_type: str = "lz4"
    replication_factor: int = REPLICATION_FACTOR
    min_insync_replicas: int = MIN_INSYNC_REPLICAS
    extra_config: dict[str, str] = field(default_factory=dict)

    def config(self, *, brokers: int) -> dict[str, str]:
        """Topic-level configuration for a cluster of ``brokers`` brokers."""
        return {
            "retention.ms": str(self.retention_ms),
            "compression.type": self.compression_type,
            "min.insync.replicas": str(min(self.min_insync_replicas, brokers)),
            **self.extra_config,
        }

    def replication_for(self, brokers: int) -> int:
        """The replication factor this topic gets on a cluster of ``brokers`` brokers."""
        return min(self.replication_factor, brokers)


DOMAINS: tuple[str, ...] = ("order", "payment", "inventory", "shipping")

TOPICS: tuple[TopicSpec, ...] = tuple(TopicSpec(name=f"{domain}.events") for domain in DOMAINS)


def dlq_topic(topic: str) -> str:
    """The dead-letter topic of ``topic``."""
    return f"{topic}{DLQ_SUFFIX}"


def all_topics() -> tuple[TopicSpec, ...]:
    """Every topic to create: each domain topic and its dead-letter twin."""
    dead_letters = tuple(
        TopicSpec(
            name=dlq_topic(spec.name),
            partitions=1,
            retention_ms=_THIRTY_DAYS_MS,
            compression_type=spec.compression_type,
            replication_factor=spec.replication_factor,
            min_insync_replicas=spec.min_insync_replicas,
        )
        for spec in TOPICS
    )
    return TOPICS + dead_letters


def topic_for_event_type(event_type: str) -> str:
    """The topic that carries ``event_type`` (``payment.completed.v1`` → ``payment.events``).

    Raises:
        ValueError: the event type is not ``{domain}.{action}.v{N}`` of a known domain.
    """
    domain, _, _ = event_type.partition(".")
    if domain not in DOMAINS or event_type.count(".") < 2:
        raise ValueError(
            f"event type {event_type!r} is not '{{domain}}.{{action}}.v{{N}}' "
            f"with a domain of {', '.join(DOMAINS)}"
        )
    return f"{domain}.events"
