"""The topic catalog: the single place that says which Kafka topics exist.

One topic per domain (``payment.events``), not per event type, so that all of one
service's events about one order share a partition (the record key is the order id)
and are read in the order they happened: a ``payment.refunded`` can never overtake
the ``payment.completed`` it undoes. Each topic has a dead-letter twin ``<topic>.dlq``.

A domain without a service of its own travels on its owner's topic: the ``return``
domain's events are the order service's, on ``order.events``, so that a return's events
share the partition of its order's (both are keyed by the order id) and follow them. The
``saga`` domain (incidents) is the orchestrator's, whose order service owns ``order.events``.

Replication figures are the production ones (design document 002: replication factor 3,
``min.insync.replicas`` 2); a smaller cluster, such as the one-node embedded broker, gets
them capped to its broker count when the catalog is applied.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "DLQ_SUFFIX",
    "DOMAINS",
    "DOMAIN_TOPICS",
    "MIN_INSYNC_REPLICAS",
    "REPLICATION_FACTOR",
    "TOPICS",
    "TopicSpec",
    "all_topics",
    "dlq_topic",
    "topic_for_domain",
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
"""The domains that own a topic, ``<domain>.events``: one per service."""

TOPICS: tuple[TopicSpec, ...] = tuple(TopicSpec(name=f"{domain}.events") for domain in DOMAINS)

DOMAIN_TOPICS: Mapping[str, str] = MappingProxyType(
    {
        **{domain: f"{domain}.events" for domain in DOMAINS},
        "return": "order.events",
        "saga": "order.events",
    }
)
"""Every event domain -> the topic that carries its events (``return`` -> ``order.events``).

The ``saga`` domain (the orchestrator's own events: incidents) is the order service's too: it
runs in the orchestrator's process, so its events travel on ``order.events``, each on its
order's partition after that order's events."""


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


def topic_for_domain(domain: str) -> str:
    """The topic that carries the events of ``domain`` (``return`` → ``order.events``).

    Raises:
        ValueError: the domain is not one of ``DOMAIN_TOPICS``.
    """
    try:
        return DOMAIN_TOPICS[domain]
    except KeyError:
        raise ValueError(
            f"unknown domain {domain!r}: not one of {', '.join(DOMAIN_TOPICS)}"
        ) from None


def topic_for_event_type(event_type: str) -> str:
    """The topic that carries ``event_type`` (``payment.completed.v1`` → ``payment.events``,
    ``return.authorized.v1`` → ``order.events``).

    Raises:
        ValueError: the event type is not ``{domain}.{action}.v{N}`` of a known domain.
    """
    domain, _, _ = event_type.partition(".")
    if domain not in DOMAIN_TOPICS or event_type.count(".") < 2:
        raise ValueError(
            f"event type {event_type!r} is not '{{domain}}.{{action}}.v{{N}}' "
            f"with a domain of {', '.join(DOMAIN_TOPICS)}"
        )
    return DOMAIN_TOPICS[domain]
