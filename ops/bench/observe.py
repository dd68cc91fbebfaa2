"""What the bench watches while the orders run: delivery, consumer lag, publish latency.

- :class:`DeliveryProbe` reads the domain topics with a consumer group of its own and times
  each of the run's events from its ``timestamp`` (set when the service built it) to the
  moment the probe received it, and to the moment the producer sent it (the record's
  timestamp): the time the event spent in the outbox.
- :class:`LagSampler` asks the broker, a few times a second, how far each of the
  orchestrator's consumer groups is behind the end of each partition it consumes.
- :func:`scrape_metrics` reads the services' ``/metrics``; :func:`publish_latency` turns two
  scrapes of ``event_publish_latency_seconds`` into the run's publish latency.
"""

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Self

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import BaseModel

from contracts.errors import ContractError
from infra.config.kafka import KafkaTarget
from infra.engines.kafka_security import ORCHESTRATOR_GROUPS
from ops.bench.stats import (
    HistogramCounts,
    LatencySummary,
    histogram_counts,
    histogram_quantile,
    subtract,
    summarize,
)
from ops.snapshot import stop_groupless, topic_partitions
from runtime import SchemaRegistry, SchemaRegistryError, decode_record, new_admin, new_consumer

__all__ = [
    "ORCHESTRATOR_GROUPS",
    "PUBLISH_LATENCY_METRIC",
    "DeliveryFigures",
    "DeliveryProbe",
    "LagFigures",
    "LagSampler",
    "PublishFigures",
    "publish_latency",
    "scrape_metrics",
]

log = logging.getLogger(__name__)


PUBLISH_LATENCY_METRIC = "event_publish_latency_seconds"


class DeliveryFigures(BaseModel):
    """The run's events as the probe received them."""

    events: int
    by_type: dict[str, int]
    end_to_end: LatencySummary | None
    """Event timestamp (built by the service) to the probe's receipt."""
    outbox_dwell: LatencySummary | None
    """Event timestamp to the record's timestamp (the producer's send)."""


class DeliveryProbe:
    """A consumer group of the bench's own on the domain topics, from their end."""

    def __init__(
        self,
        bootstrap_servers: KafkaTarget,
        topics: list[str],
        *,
        group_id: str,
        key_prefix: str,
        schemas: SchemaRegistry | None = None,
    ):
        """``schemas`` resolves framed records' schema ids (the caller closes it)."""
        self._consumer: AIOKafkaConsumer = new_consumer(
            bootstrap_servers, group_id, auto_offset_reset="latest"
        )
        self._bootstrap = bootstrap_servers
        self._topics = topics
        self._prefix = key_prefix.encode()
        self._schemas = schemas
        self._task: asyncio.Task[None] | None = None
        self._end_to_end: list[float] = []
        self._dwell: list[float] = []
        self._by_type: Counter[str] = Counter()
        self._awaited: int | None = None
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> Self:
        consumer = self._consumer
        await consumer.start()
        try:
            expected = len(await topic_partitions(self._bootstrap, self._topics))
            consumer.subscribe(self._topics)
            await self._until_assigned(expected)
            # Fix the start at the end of each partition now, before any order is placed.
            for partition in consumer.assignment():
                await consumer.position(partition)
        except BaseException:
            await consumer.stop()
            raise
        self._task = asyncio.create_task(self._receive(), name="bench-delivery-probe")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await _cancel(self._task)
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self._consumer.stop(), 10)

    async def _until_assigned(self, partitions: int, seconds: float = 60.0) -> None:
        deadline = time.monotonic() + seconds
        while len(self._consumer.assignment()) < partitions:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the bench's consumer got no partitions within {seconds:g} s")
            await asyncio.sleep(0.05)

    @property
    def received(self) -> int:
        """How many of the run's events arrived so far."""
        return sum(self._by_type.values())

    async def wait_for(self, events: int, *, seconds: float) -> None:
        """Wait until ``events`` of the run's events arrived, or ``seconds`` passed."""
        self._awaited = events
        if self.received < events:
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), seconds)

    def figures(self) -> DeliveryFigures:
        """What was received so far."""
        return DeliveryFigures(
            events=self.received,
            by_type=dict(sorted(self._by_type.items())),
            end_to_end=summarize(self._end_to_end),
            outbox_dwell=summarize(self._dwell),
        )

    async def _receive(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200)
            received = time.time()  # one clock for the batch: decoding is not delivery
            for records in batches.values():
                for record in records:
                    if not record.key or not record.key.startswith(self._prefix):
                        continue  # not one of this run's orders
                    try:
                        event = await decode_record(self._schemas, record.value, record.headers)
                    except (ContractError, SchemaRegistryError):
                        continue  # not an event, or not one the probe can read: not counted
                    built = event.timestamp.timestamp()
                    self._end_to_end.append(max(received - built, 0.0))
                    self._dwell.append(max(record.timestamp / 1000 - built, 0.0))
                    self._by_type[event.event_type] += 1
            if self._awaited is not None and self.received >= self._awaited:
                self._arrived.set()


class LagFigures(BaseModel):
    """The orchestrator's consumer groups' lag during the run (records behind the end)."""

    samples: int
    interval_s: float
    peak_partition_lag: int
    peak_partition: str | None
    """``group topic[partition]`` where the peak was seen."""
    peak_group_lag: dict[str, int]
    """Each group's highest lag summed over its partitions."""


class LagSampler:
    """Samples the consumer groups' committed offsets against the partitions' ends.

    Each sample's lag summed over the groups is kept in :attr:`history`, with the moment it
    was taken (``time.monotonic()``): what the chaos run reads to see the lag return after a
    fault. A sample that fails (Kafka away) is skipped.
    """

    def __init__(
        self,
        bootstrap_servers: KafkaTarget,
        topics: list[str],
        groups: Iterable[str] = ORCHESTRATOR_GROUPS,
        *,
        interval: float = 0.25,
        failure_level: int = logging.WARNING,
        request_timeout_ms: int = 40_000,
    ) -> None:
        """``failure_level``: how a failed sample is logged; ``request_timeout_ms``: how long
        a request may go unanswered (a run that stops brokers on purpose expects failures,
        and wants the next sample soon rather than after the client's default 40 s)."""
        self._bootstrap = bootstrap_servers
        self._failure_level = failure_level
        self._topics = topics
        self._wanted = list(groups)
        self._groups: list[str] = []
        """The wanted groups that exist (a group exists once a member has joined it)."""
        self._interval = interval
        timeout = {"request_timeout_ms": request_timeout_ms}
        self._admin = new_admin(bootstrap_servers, **timeout)
        self._ends = new_consumer(
            bootstrap_servers, None, isolation_level="read_uncommitted", **timeout
        )
        self._task: asyncio.Task[None] | None = None
        self._samples = 0
        self._peak = 0
        self._peak_at: str | None = None
        self._group_peaks: dict[str, int] = {}
        self._partitions: list[TopicPartition] = []
        self.history: list[tuple[float, int]] = []
        """(monotonic time, lag summed over the groups) of every sample taken."""

    async def __aenter__(self) -> Self:
        self._partitions = await topic_partitions(self._bootstrap, self._topics)
        await self._admin.start()
        await self._ends.start()
        await self._find_groups()
        self._task = asyncio.create_task(self._sample_forever(), name="bench-lag-sampler")
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await _cancel(self._task)
        await stop_groupless(self._ends)
        with contextlib.suppress(KafkaError, TimeoutError):
            await asyncio.wait_for(self._admin.close(), 10)

    def figures(self) -> LagFigures:
        """The peaks seen so far."""
        return LagFigures(
            samples=self._samples,
            interval_s=self._interval,
            peak_partition_lag=self._peak,
            peak_partition=self._peak_at,
            peak_group_lag=dict(self._group_peaks),
        )

    async def _sample_forever(self) -> None:
        while True:
            try:
                await self.sample()
            except (KafkaError, OSError, TimeoutError) as exc:
                log.log(self._failure_level, "consumer lag sample failed: %s", exc)
            await asyncio.sleep(self._interval)

    @property
    def groups(self) -> list[str]:
        """The groups sampled (those of the wanted ones found so far)."""
        return list(self._groups)

    async def _find_groups(self) -> None:
        try:
            listed = await self._admin.list_consumer_groups()
        except KafkaError as exc:
            if not exc.retriable:
                raise
            # A coordinator still loading its groups (a cluster just started, a node just
            # back): the groups are looked for again at the next sample.
            return
        existing = {group for group, *_ in listed}
        self._groups = [group for group in self._wanted if group in existing]

    async def sample(self) -> None:
        """Take one sample of every group's lag (looking again for the groups that did not
        exist yet: a stack just started, whose consumers are still joining)."""
        if len(self._groups) < len(self._wanted):
            await self._find_groups()
        ends: Mapping[TopicPartition, int] = await self._ends.end_offsets(self._partitions)
        lag_of_groups = 0
        for group in self._groups:
            committed = await self._admin.list_consumer_group_offsets(group)
            total = 0
            # Only partitions the group has committed on: a group does not read every topic.
            for partition, position in committed.items():
                if partition not in ends or position.offset < 0:
                    continue
                lag = max(ends[partition] - position.offset, 0)
                total += lag
                if lag > self._peak:
                    self._peak = lag
                    self._peak_at = f"{group} {partition.topic}[{partition.partition}]"
            self._group_peaks[group] = max(self._group_peaks.get(group, 0), total)
            lag_of_groups += total
        self._samples += 1
        self.history.append((time.monotonic(), lag_of_groups))


async def scrape_metrics(urls: Mapping[str, str]) -> dict[str, str | None]:
    """Each service's ``/metrics`` text, or None where it could not be read."""
    # The services mount their metrics app at /metrics, which redirects to /metrics/.
    async with httpx.AsyncClient(timeout=5.0, follow_redirects=True) as http:

        async def scrape(url: str) -> str | None:
            try:
                response = await http.get(url)
            except httpx.HTTPError:
                return None
            return response.text if response.status_code == 200 else None

        texts = await asyncio.gather(*(scrape(url) for url in urls.values()))
    return dict(zip(urls, texts, strict=True))


class ServicePublish(BaseModel):
    """One service's publishes during the run."""

    events: int
    p95_ms: float | None


class PublishFigures(BaseModel):
    """``event_publish_latency_seconds`` over the run, from the services' own histograms.

    Percentiles are estimated within the histogram's buckets (as Prometheus's
    ``histogram_quantile``), so they are only as fine as the buckets around them.
    """

    events: int
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    bucket_bounds_ms: list[float]
    by_service: dict[str, ServicePublish]
    unavailable: list[str]
    """Services whose ``/metrics`` could not be read or had no such histogram."""


def publish_latency(
    before: Mapping[str, str | None], after: Mapping[str, str | None]
) -> PublishFigures:
    """The publish latency histogram's growth between two scrapes of every service."""
    total: HistogramCounts = {}
    by_service: dict[str, ServicePublish] = {}
    unavailable: list[str] = []
    for service, text in after.items():
        earlier = before.get(service)
        counts = histogram_counts(text, PUBLISH_LATENCY_METRIC) if text else {}
        if not counts or earlier is None:
            unavailable.append(service)
            continue
        delta = subtract(counts, histogram_counts(earlier, PUBLISH_LATENCY_METRIC))
        for bound, count in delta.items():
            total[bound] = total.get(bound, 0.0) + count
        by_service[service] = ServicePublish(
            events=int(delta.get(float("inf"), 0.0)), p95_ms=_ms(histogram_quantile(delta, 0.95))
        )
    return PublishFigures(
        events=int(total.get(float("inf"), 0.0)),
        p50_ms=_ms(histogram_quantile(total, 0.50)),
        p95_ms=_ms(histogram_quantile(total, 0.95)),
        p99_ms=_ms(histogram_quantile(total, 0.99)),
        bucket_bounds_ms=[bound * 1000 for bound in sorted(total) if bound != float("inf")],
        by_service=by_service,
        unavailable=unavailable,
    )


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


async def _cancel(task: asyncio.Task[None] | None) -> None:
    """Cancel the probe's background task (if it was started) and wait for it to end."""
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
