"""A three-node Kafka cluster of a test's own, whose nodes the test kills, stops and starts."""

import asyncio
import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.topics import all_topics
from infra.engines.kafka_broker import (
    KafkaCluster,
    apply_topic_catalog,
    wait_for_brokers,
    wait_for_topics,
)
from infra.engines.processes import (
    ProcessRecord,
    kill_process,
    reserve_ports,
    spawn,
    stop_process,
    stop_processes,
)
from tests.support.stacks import START_TIMEOUT, log_tail

CLUSTER_NODES = 3


class ClusterProcesses:
    """The processes of a ``KafkaCluster``'s nodes, one record per node id."""

    def __init__(self, cluster: KafkaCluster) -> None:
        self.cluster = cluster
        self._records: dict[int, ProcessRecord] = {}

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address."""
        return self.cluster.bootstrap_servers

    def log(self, node_id: int) -> Path:
        """Where node ``node_id`` writes its log (appended to across restarts)."""
        return self.cluster.node(node_id).data_dir / "broker.log"

    def logs(self) -> str:
        """The last lines of every node's log, for a failure message."""
        return "\n".join(
            f"--- node {node.node_id} ---\n{log_tail(self.log(node.node_id))}"
            for node in self.cluster.nodes
        )

    def start(self, node_id: int) -> None:
        """Start node ``node_id`` (its storage formatted already)."""
        node = self.cluster.node(node_id)
        _, self._records[node_id] = spawn(f"kafka-{node_id}", node.command(), self.log(node_id))

    def kill(self, node_id: int) -> None:
        """SIGKILL node ``node_id``: a crash, nothing flushed or handed over."""
        assert kill_process(self._records[node_id]), f"node {node_id} was not running"

    def stop(self, node_id: int) -> None:
        """Stop node ``node_id`` the graceful way (SIGTERM, a controlled shutdown)."""
        assert stop_process(self._records[node_id]), f"node {node_id} was not running"

    def running(self) -> list[int]:
        """The ids of the nodes whose process is alive."""
        return [node_id for node_id, record in self._records.items() if record.is_alive()]

    async def restore(self) -> None:
        """Start every node that is down and wait until all of them are registered again."""
        for node in self.cluster.nodes:
            if node.node_id not in self.running():
                self.start(node.node_id)
        try:
            await wait_for_brokers(
                self.bootstrap_servers, len(self.cluster.nodes), wait_seconds=START_TIMEOUT
            )
        except Exception as exc:  # noqa: BLE001 - a node that does not return fails with the logs
            pytest.fail(f"the Kafka cluster did not form again: {exc}\n{self.logs()}")

    def stop_all(self) -> None:
        """Stop every node by its process id."""
        stop_processes(list(self._records.values()))


@contextlib.contextmanager
def running_cluster(libs: Path, data_dir: Path) -> Iterator[ClusterProcesses]:
    """A real three-node Kafka cluster on free loopback ports, with the topic catalog applied,
    stopped at the end. Fails the calling test, with every node's log, if it does not form."""
    with reserve_ports() as ports:
        pairs = [(ports.port(), ports.port()) for _ in range(CLUSTER_NODES)]
    cluster = KafkaCluster.on_ports(libs, data_dir, pairs)
    processes = ClusterProcesses(cluster)
    try:
        cluster.format_storage()
        for node in cluster.nodes:
            processes.start(node.node_id)
        asyncio.run(
            wait_for_brokers(cluster.bootstrap_servers, CLUSTER_NODES, wait_seconds=START_TIMEOUT)
        )
        asyncio.run(apply_topic_catalog(cluster.bootstrap_servers, all_topics()))
        asyncio.run(
            wait_for_topics(
                cluster.bootstrap_servers,
                all_topics(),
                CLUSTER_NODES,
                wait_seconds=START_TIMEOUT,
            )
        )
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the logs
        processes.stop_all()
        pytest.fail(f"the Kafka cluster did not start: {exc}\n{processes.logs()}", pytrace=False)
    try:
        yield processes
    finally:
        processes.stop_all()
