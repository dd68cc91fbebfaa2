"""The three-node cluster's configuration, as written to each node's server.properties."""

from pathlib import Path

import pytest

from infra.engines.kafka_broker import KafkaBroker, KafkaCluster, cluster_id_of

PORTS = [(19092, 19093), (19192, 19193), (19292, 19293)]
PRODUCTION = {
    "default.replication.factor": "3",
    "min.insync.replicas": "2",
    "offsets.topic.replication.factor": "3",
    "transaction.state.log.replication.factor": "3",
    "transaction.state.log.min.isr": "2",
    "unclean.leader.election.enable": "false",
}


def _properties(node: KafkaBroker) -> dict[str, str]:
    lines = node.write_config().read_text().splitlines()
    return dict(line.split("=", 1) for line in lines)


def test_every_node_has_its_own_id_ports_and_folder_in_one_quorum(tmp_path: Path) -> None:
    cluster = KafkaCluster.on_ports(tmp_path / "libs", tmp_path / "kafka", PORTS)
    voters = "1@127.0.0.1:19093,2@127.0.0.1:19193,3@127.0.0.1:19293"
    for node_id, (port, controller) in enumerate(PORTS, start=1):
        config = _properties(cluster.node(node_id))
        assert config["node.id"] == str(node_id)
        assert config["controller.quorum.voters"] == voters
        assert config["listeners"] == (
            f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller}"
        )
        assert config["log.dirs"] == str(tmp_path / "kafka" / f"node-{node_id}" / "log")
    assert cluster.bootstrap_servers == "127.0.0.1:19092,127.0.0.1:19192,127.0.0.1:19292"


def test_the_cluster_nodes_carry_the_production_figures(tmp_path: Path) -> None:
    cluster = KafkaCluster.on_ports(tmp_path / "libs", tmp_path / "kafka", PORTS)
    config = _properties(cluster.node(2))
    assert {key: config[key] for key in PRODUCTION} == PRODUCTION


def test_the_one_node_broker_keeps_its_capped_figures(tmp_path: Path) -> None:
    broker = KafkaBroker(
        libs=tmp_path, data_dir=tmp_path / "kafka", port=19092, controller_port=19093
    )
    config = _properties(broker)
    assert config["node.id"] == "1"
    assert config["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert config["offsets.topic.replication.factor"] == "1"
    assert config["transaction.state.log.min.isr"] == "1"
    assert "default.replication.factor" not in config
    assert "min.insync.replicas" not in config


def test_a_node_outside_its_quorum_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not in the quorum"):
        KafkaBroker(
            libs=tmp_path,
            data_dir=tmp_path,
            port=19092,
            controller_port=19093,
            node_id=2,
            quorum=(19093, 19193),
        )


def test_nodes_formatted_for_different_clusters_are_refused(tmp_path: Path) -> None:
    cluster = KafkaCluster.on_ports(tmp_path / "libs", tmp_path / "kafka", PORTS)
    for node, cluster_id in zip(cluster.nodes[:2], ("AAAA", "BBBB"), strict=True):
        (node.data_dir / "log").mkdir(parents=True)
        (node.data_dir / "log" / "meta.properties").write_text(
            f"node.id={node.node_id}\ncluster.id={cluster_id}\nversion=1\n"
        )
    assert cluster_id_of(cluster.node(1)) == "AAAA"
    assert cluster_id_of(cluster.node(3)) is None
    with pytest.raises(RuntimeError, match="different clusters"):
        cluster.format_storage()


def _quorum_state(node: KafkaBroker, leader: int, epoch: int) -> None:
    # The file as Kafka 4.1 writes it (__cluster_metadata-0/quorum-state).
    path = node.data_dir / "log" / "__cluster_metadata-0" / "quorum-state"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        f'{{"clusterId":"","leaderId":{leader},"leaderEpoch":{epoch},"votedId":-1,'
        '"appliedOffset":0,"currentVoters":[{"voterId":1},{"voterId":2},{"voterId":3}],'
        '"data_version":0}'
    )


def test_the_active_controller_is_the_leader_of_the_latest_epoch_a_node_recorded(
    tmp_path: Path,
) -> None:
    """A node that was down keeps the leader of an older epoch; an election in progress names
    none: the latest epoch with a leader wins."""
    cluster = KafkaCluster.on_ports(tmp_path / "libs", tmp_path / "kafka", PORTS)
    assert cluster.active_controller() is None  # never started

    _quorum_state(cluster.node(1), leader=1, epoch=2)  # down since epoch 2
    _quorum_state(cluster.node(2), leader=3, epoch=4)
    _quorum_state(cluster.node(3), leader=-1, epoch=5)  # a candidate of epoch 5
    assert cluster.active_controller() == 3

    _quorum_state(cluster.node(2), leader=2, epoch=5)
    assert cluster.active_controller() == 2
