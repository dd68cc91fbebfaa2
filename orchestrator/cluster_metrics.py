"""The Kafka cluster as the dashboards' cluster and topic panels see it, read from our side.

Design document 002 watches the brokers through their JMX metrics (active controller,
under-replicated partitions, messages in per second...). This project exports a small
equivalent instead, filled by one background task (in the orchestrator worker) from the
admin client and a consumer without a group every ``interval`` seconds: a few requests a
tick, none per record.

- ``kafka_brokers``, ``kafka_active_controller_count``: the cluster's metadata.
- ``kafka_topics``; per topic ``kafka_topic_partitions``,
  ``kafka_topic_under_replicated_partitions`` (fewer in-sync replicas than replicas) and
  ``kafka_topic_retention_seconds``.
- ``kafka_topic_messages_total``: the sum of the topic's end offsets, a counter of every
  record ever appended, so ``rate()`` of it is the topic's messages in per second.
- ``kafka_cluster_scrape_success`` (1 or 0) and ``kafka_cluster_scrape_timestamp_seconds``.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from infra.config.kafka import KafkaTarget
from runtime import new_admin, new_consumer

__all__ = ["ClusterView", "KafkaClusterMetrics", "KafkaClusterWatch", "TopicView"]

log = logging.getLogger(__name__)

_RETENTION_MS = "retention.ms"


@dataclass(frozen=True)
class TopicView:
    """One topic at one moment."""

    partitions: int
    under_replicated: int
    messages: int
    """The sum of the partitions' end offsets: every record ever appended."""
    retention_seconds: float | None
    """None when the topic keeps records for ever (``retention.ms`` -1) or it is unknown."""


@dataclass(frozen=True)
class ClusterView:
    """The cluster at one moment."""

    brokers: int
    active_controllers: int
    topics: dict[str, TopicView] = field(default_factory=dict)


class KafkaClusterMetrics(Collector):
    """Serves the last :class:`ClusterView` on the registry it is handed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._view: ClusterView | None = None
        self._scraped_at: float | None = None
        self._success = 0.0
        registry.register(self)

    def update(self, view: ClusterView) -> None:
        """Serve ``view`` from now on."""
        self._view, self._scraped_at, self._success = view, time.time(), 1.0

    def failed(self) -> None:
        """Note that the last look at the cluster failed (the last view is kept)."""
        self._success = 0.0

    def describe(self) -> Iterator[Metric]:
        # Without this the registry would collect() once at registration to learn the names.
        return iter(())

    def collect(self) -> Iterator[Metric]:
        success = GaugeMetricFamily(
            "kafka_cluster_scrape_success",
            "1 if the last look at the Kafka cluster (every 15 s) succeeded, else 0",
            value=self._success,
        )
        yield success
        view = self._view
        if view is None:
            return
        yield GaugeMetricFamily(
            "kafka_cluster_scrape_timestamp_seconds",
            "When the Kafka cluster was last seen (Unix time)",
            value=self._scraped_at or 0.0,
        )
        yield GaugeMetricFamily("kafka_brokers", "Brokers in the cluster", value=view.brokers)
        yield GaugeMetricFamily(
            "kafka_active_controller_count",
            "Active controllers the cluster reports (1 when healthy)",
            value=view.active_controllers,
        )
        yield GaugeMetricFamily(
            "kafka_topics", "Topics in the cluster (internal ones excepted)", value=len(view.topics)
        )
        partitions = GaugeMetricFamily(
            "kafka_topic_partitions", "Partitions of a topic", labels=["topic"]
        )
        under = GaugeMetricFamily(
            "kafka_topic_under_replicated_partitions",
            "Partitions of a topic with fewer in-sync replicas than replicas",
            labels=["topic"],
        )
        messages = CounterMetricFamily(
            "kafka_topic_messages",
            "Records ever appended to a topic (sum of its end offsets); rate() is messages in/s",
            labels=["topic"],
        )
        retention = GaugeMetricFamily(
            "kafka_topic_retention_seconds",
            "How long a topic keeps its records (retention.ms)",
            labels=["topic"],
        )
        for name, topic in sorted(view.topics.items()):
            partitions.add_metric([name], topic.partitions)
            under.add_metric([name], topic.under_replicated)
            messages.add_metric([name], topic.messages)
            if topic.retention_seconds is not None:
                retention.add_metric([name], topic.retention_seconds)
        yield from (partitions, under, messages, retention)


class KafkaClusterWatch:
    """Looks at the cluster every ``interval`` seconds and hands what it saw to the metrics."""

    def __init__(
        self,
        bootstrap_servers: KafkaTarget,
        metrics: KafkaClusterMetrics,
        *,
        interval: float = 15.0,
        request_timeout: float = 10.0,
    ) -> None:
        self._bootstrap_servers = bootstrap_servers
        self._metrics = metrics
        self._interval = interval
        self._timeout = request_timeout

    async def run(self) -> None:
        """Look until cancelled; a failed look is logged and tried again next tick."""
        admin = new_admin(
            self._bootstrap_servers,
            request_timeout_ms=int(self._timeout * 1000),
        )
        offsets = new_consumer(self._bootstrap_servers, None)
        started = False
        try:
            while True:
                try:
                    if not started:
                        await asyncio.wait_for(admin.start(), self._timeout)
                        await asyncio.wait_for(offsets.start(), self._timeout)
                        started = True
                    view = await asyncio.wait_for(self.look(admin, offsets), self._timeout * 3)
                except Exception as exc:  # noqa: BLE001 - a failed look must not stop the process
                    log.warning("cannot read the Kafka cluster's figures: %s", exc)
                    self._metrics.failed()
                else:
                    self._metrics.update(view)
                await asyncio.sleep(self._interval)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(offsets.stop(), self._timeout)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(admin.close(), self._timeout)

    async def look(self, admin: AIOKafkaAdminClient, offsets: AIOKafkaConsumer) -> ClusterView:
        """One look: metadata, topic configs and end offsets (a handful of requests)."""
        cluster = await admin.describe_cluster()
        described = [
            topic
            for topic in await admin.describe_topics()
            if topic["error_code"] == 0 and not topic.get("is_internal", False)
        ]
        names = [topic["topic"] for topic in described]
        retention = await self._retention(admin, names)
        partitions = [
            TopicPartition(topic["topic"], partition["partition"])
            for topic in described
            for partition in topic["partitions"]
        ]
        ends: dict[TopicPartition, int] = (
            await offsets.end_offsets(partitions) if partitions else {}
        )
        topics = {}
        for topic in described:
            name = topic["topic"]
            topics[name] = TopicView(
                partitions=len(topic["partitions"]),
                under_replicated=sum(
                    1 for p in topic["partitions"] if len(p["isr"]) < len(p["replicas"])
                ),
                messages=sum(
                    offset for tp, offset in ends.items() if tp.topic == name and offset is not None
                ),
                retention_seconds=retention.get(name),
            )
        controller = cluster.get("controller_id")
        return ClusterView(
            brokers=len(cluster.get("brokers", [])),
            active_controllers=1 if isinstance(controller, int) and controller >= 0 else 0,
            topics=topics,
        )

    async def _retention(self, admin: AIOKafkaAdminClient, topics: list[str]) -> dict[str, float]:
        if not topics:
            return {}
        responses = await admin.describe_configs(
            [
                ConfigResource(ConfigResourceType.TOPIC, name, configs={_RETENTION_MS: None})
                for name in topics
            ]
        )
        found: dict[str, float] = {}
        for response in responses:
            for resource in _resources(response):
                name, entries = resource[3], resource[4]
                for entry in entries:
                    if entry[0] == _RETENTION_MS and entry[1] is not None and int(entry[1]) >= 0:
                        found[name] = int(entry[1]) / 1000
        return found


def _resources(response: Any) -> list[Any]:
    # DescribeConfigsResponse: (throttle_time_ms, [(error_code, error_message,
    # resource_type, resource_name, [(config_names, config_value, ...)])])
    resources: list[Any] = response.resources
    return resources
