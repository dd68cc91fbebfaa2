"""Apache Kafka in KRaft mode on 127.0.0.1, jars from Maven Central: the embedded broker (one
node) and the three-node cluster of the cluster topology."""

import asyncio
import base64
import functools
import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from contracts.topics import MIN_INSYNC_REPLICAS, REPLICATION_FACTOR, TopicSpec
from infra.config.kafka import ADMIN_USER, SASL_MECHANISM, KafkaTarget, scram_jaas_config
from infra.engines.kafka_security import KafkaAcl, TlsFiles
from infra.engines.processes import require_tool
from runtime import KafkaUnavailableError, new_admin, wait_for_kafka

__all__ = [
    "BrokerSecurity",
    "KafkaBroker",
    "KafkaCluster",
    "TopicReport",
    "apply_acls",
    "apply_topic_catalog",
    "broker_version",
    "cluster_id_of",
    "ensure_kafka_jars",
    "fetch_maven_jars",
    "wait_for_brokers",
    "wait_for_topics",
]

_RESOURCES = Path(__file__).parent / "kafka"
_COMPLETE_MARKER = ".complete"
_SECURED_MARKER = "scram-users"


def fetch_maven_jars(
    pom: Path,
    libs: Path,
    version: str,
    *,
    label: str,
    maven: str = "mvn",
    progress: Callable[[str], None] = print,
) -> Path:
    """The jars ``pom`` depends on at ``version`` (``-Dkafka.version``), copied into ``libs``
    by Maven the first time, each jar shown as it arrives; ``label`` names them in messages.

    Raises:
        MissingToolError: Maven is not installed.
        RuntimeError: Maven could not resolve the jars (its last lines are in the message).
    """
    if (libs / _COMPLETE_MARKER).exists():
        return libs
    mvn = require_tool(
        maven, f"fetching {label}", "install Maven (apt-get install maven) or set SAGA_MAVEN"
    )
    if libs.exists():
        shutil.rmtree(libs)  # an interrupted fetch leaves a partial set of jars
    libs.mkdir(parents=True)
    progress(f"Fetching {label} {version} from Maven Central into {libs} (first time only)")
    command = [
        mvn, "-B", "-f", str(pom),
        "dependency:copy-dependencies",
        f"-Dkafka.version={version}",
        f"-DoutputDirectory={libs}",
        "-DincludeScope=runtime",
    ]  # fmt: skip
    tail: list[str] = []
    fetched = 0
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    ) as maven_run:
        assert maven_run.stdout is not None
        for line in maven_run.stdout:
            tail = [*tail[-19:], line.rstrip()]
            downloaded = re.search(r"Downloaded from \S+: \S+/([^/\s]+\.jar) \(([^)]*)\)", line)
            if downloaded:
                fetched += 1
                progress(f"  [{fetched:>3}] {downloaded.group(1)} ({downloaded.group(2)})")
    if maven_run.returncode != 0:
        shutil.rmtree(libs, ignore_errors=True)
        raise RuntimeError(
            f"Maven could not fetch {label} {version} (is Maven Central reachable?):\n"
            + "\n".join(tail)
        )
    jars = len(list(libs.glob("*.jar")))
    (libs / _COMPLETE_MARKER).write_text(version)
    progress(f"{label} {version}: {jars} jars ready")
    return libs


def ensure_kafka_jars(
    cache_dir: Path,
    version: str,
    *,
    maven: str = "mvn",
    progress: Callable[[str], None] = print,
) -> Path:
    """The folder of Kafka ``version``'s jars, fetched from Maven Central on first use.

    Raises:
        MissingToolError: Maven is not installed.
        RuntimeError: Maven could not resolve the jars (its last lines are in the message).
    """
    return fetch_maven_jars(
        _RESOURCES / "pom.xml",
        cache_dir / version / "libs",
        version,
        label="Apache Kafka",
        maven=maven,
        progress=progress,
    )


@dataclass(frozen=True)
class BrokerSecurity:
    """What the secured broker needs: its TLS files and its SCRAM users' passwords."""

    tls: TlsFiles
    passwords: Mapping[str, str] = field(repr=False)
    """Every SCRAM user's password, the super user :data:`ADMIN_USER`'s among them."""

    @property
    def admin_password(self) -> str:
        """The super user's password."""
        return self.passwords[ADMIN_USER]


@dataclass(frozen=True)
class KafkaBroker:
    """One Kafka process in KRaft mode acting as broker and controller, on loopback: alone (the
    embedded broker), or node ``node_id`` of a cluster whose controllers listen on ``quorum``."""

    libs: Path
    data_dir: Path
    port: int
    controller_port: int
    host: str = "127.0.0.1"
    java: str = "java"
    heap: str = "512m"
    security: BrokerSecurity | None = None
    """None: one PLAINTEXT listener; else SASL_SSL (SCRAM-SHA-512) and ACLs."""
    node_id: int = 1
    quorum: tuple[int, ...] = ()
    """The controller ports of every node of the cluster, node ``n`` at ``quorum[n - 1]``;
    empty: this node is the whole cluster."""

    def __post_init__(self) -> None:
        voters = self.quorum or (self.controller_port,)
        if not 1 <= self.node_id <= len(voters) or voters[self.node_id - 1] != self.controller_port:
            raise ValueError(
                f"node {self.node_id} with controller port {self.controller_port} "
                f"is not in the quorum {voters}"
            )

    @property
    def cluster_size(self) -> int:
        """How many nodes the cluster of this node has."""
        return len(self.quorum) or 1

    @property
    def bootstrap_servers(self) -> str:
        """The address clients connect to."""
        return f"{self.host}:{self.port}"

    @property
    def config_path(self) -> Path:
        """Where the broker's server.properties is written."""
        return self.data_dir / "server.properties"

    def write_config(self) -> Path:
        """Write server.properties for this broker and return its path."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        logs = self.data_dir / "log"
        voters = self.quorum or (self.controller_port,)
        settings = {
            "process.roles": "broker,controller",
            "node.id": str(self.node_id),
            "controller.quorum.voters": ",".join(
                f"{node}@{self.host}:{port}" for node, port in enumerate(voters, start=1)
            ),
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            # One node: the internal topics cannot have more replicas than there are brokers
            # (a cluster's own figures replace these, in _replication_settings).
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Topics come from the catalog only, never from a mistyped name.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.cluster_size > 1:
            settings.update(self._replication_settings())
        if self.security is not None:
            settings.update(self._secured_settings(self.security))
        # Secured, the file holds the super user's password: readable by this user only.
        self.config_path.unlink(missing_ok=True)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in settings.items())
        return self.config_path

    def _replication_settings(self) -> dict[str, str]:
        """The production figures, capped to the cluster's size: no acknowledged write on one
        copy alone, and no out-of-sync copy ever elected leader."""
        copies = str(min(REPLICATION_FACTOR, self.cluster_size))
        in_sync = str(min(MIN_INSYNC_REPLICAS, self.cluster_size))
        return {
            "default.replication.factor": copies,
            "min.insync.replicas": in_sync,
            "offsets.topic.replication.factor": copies,
            "transaction.state.log.replication.factor": copies,
            "transaction.state.log.min.isr": in_sync,
            "share.coordinator.state.topic.replication.factor": copies,
            "share.coordinator.state.topic.min.isr": in_sync,
            "unclean.leader.election.enable": "false",
        }

    def _secured_settings(self, security: BrokerSecurity) -> dict[str, str]:
        admin = security.admin_password
        return {
            "listeners": (
                f"SASL_SSL://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"SASL_SSL://{self.host}:{self.port}",
            "inter.broker.listener.name": "SASL_SSL",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT",
            # Clients and the broker itself: SCRAM over TLS, users from the metadata log.
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            "sasl.mechanism.inter.broker.protocol": SASL_MECHANISM,
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config": scram_jaas_config(
                ADMIN_USER, admin
            ),
            # The controller listener (loopback, this process only) cannot use SCRAM, whose
            # users live in the metadata it serves: PLAIN with one static user, the super user.
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": (
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'username="{ADMIN_USER}" password="{admin}" user_{ADMIN_USER}="{admin}";'
            ),
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(security.tls.broker),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(security.tls.ca),
            "ssl.client.auth": "none",
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def _java(self) -> str:
        return require_tool(
            self.java,
            "the embedded Kafka broker",
            "install Java 17 (apt-get install openjdk-17-jre-headless) or set SAGA_JAVA",
        )

    def _classpath(self) -> str:
        return f"{self.libs}/*"

    @property
    def formatted(self) -> bool:
        """Whether this node's KRaft storage has been formatted."""
        return (self.data_dir / "log" / "meta.properties").exists()

    def quorum_state(self) -> tuple[int, int] | None:
        """The KRaft leader this node last recorded, as ``(leader id, epoch)``: what its
        ``quorum-state`` file (the metadata log's election state, written at every change)
        says; None if it names no leader or cannot be read."""
        path = self.data_dir / "log" / "__cluster_metadata-0" / "quorum-state"
        try:
            state = json.loads(path.read_text())
            leader, epoch = int(state["leaderId"]), int(state["leaderEpoch"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return (leader, epoch) if leader >= 0 else None

    def format_storage(self, cluster_id: str | None = None) -> None:
        """Format the KRaft storage once, for ``cluster_id`` (None: a new cluster's id); a
        formatted data directory is left as it is.

        Raises:
            MissingToolError: Java is not installed.
            RuntimeError: formatting failed (the tool's output is in the message).
        """
        config = self.write_config()
        marker = self.data_dir / _SECURED_MARKER
        if self.formatted:
            if self.security is not None and not marker.exists():
                raise RuntimeError(
                    f"the Kafka storage in {self.data_dir} was formatted without SCRAM users, "
                    "so it cannot be secured: `saga down`, remove that folder (its topics "
                    "go with it) and `saga up` again"
                )
            return
        if cluster_id is None:
            cluster_id = _new_cluster_id()
        users = []
        if self.security is not None:
            # The SCRAM users are in the metadata log from the first start (KRaft bootstrap).
            for user, password in self.security.passwords.items():
                users += ["--add-scram", f"{SASL_MECHANISM}=[name={user},password={password}]"]
        result = subprocess.run(
            [self._java(), "-cp", self._classpath(), "kafka.tools.StorageTool",
             "format", f"--cluster-id={cluster_id}", "-c", str(config), *users],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"formatting Kafka storage failed: {result.stdout}{result.stderr}")
        if self.security is not None:
            marker.write_text(" ".join(self.security.passwords))

    def command(self) -> list[str]:
        """The command line that runs the broker."""
        return [
            self._java(), f"-Xmx{self.heap}", f"-Xms{self.heap}",
            "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={_RESOURCES / 'log4j2.properties'}",
            "-cp", self._classpath(), "kafka.Kafka", str(self.config_path),
        ]  # fmt: skip


def _new_cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


def cluster_id_of(node: KafkaBroker) -> str | None:
    """The cluster id formatted into ``node``'s storage, or None if it is not formatted."""
    try:
        text = (node.data_dir / "log" / "meta.properties").read_text()
    except OSError:
        return None
    found = re.search(r"^cluster\.id=(\S+)$", text, re.MULTILINE)
    return found.group(1) if found else None


@dataclass(frozen=True)
class KafkaCluster:
    """Kafka nodes that are brokers and, together, the controller quorum (each node a voter),
    numbered 1 to N, each with its own ports and data directory under one folder."""

    nodes: tuple[KafkaBroker, ...]

    @classmethod
    def on_ports(
        cls,
        libs: Path,
        data_dir: Path,
        ports: Sequence[tuple[int, int]],
        *,
        java: str = "java",
        heap: str = "384m",
    ) -> "KafkaCluster":
        """A cluster of one node per ``(port, controller port)`` pair, in ``data_dir/node-N``.

        The heap is small on purpose: three nodes share a machine of two cores with the rest
        of the stack.
        """
        quorum = tuple(controller for _, controller in ports)
        node = functools.partial(KafkaBroker, libs=libs, java=java, heap=heap, quorum=quorum)
        return cls(
            tuple(
                node(data_dir=data_dir / f"node-{n}", port=port, controller_port=c, node_id=n)
                for n, (port, c) in enumerate(ports, start=1)
            )
        )

    @property
    def bootstrap_servers(self) -> str:
        """Every node's address: clients find the cluster through whichever answers."""
        return ",".join(node.bootstrap_servers for node in self.nodes)

    def node(self, node_id: int) -> KafkaBroker:
        """The node whose ``node.id`` is ``node_id``."""
        return self.nodes[node_id - 1]

    def active_controller(self) -> int | None:
        """The node id of the active KRaft controller: the leader of the latest epoch any node
        recorded (:meth:`KafkaBroker.quorum_state`); None before the first election.

        Not the metadata's ``controller_id`` (``describe_cluster()``): in KRaft a broker
        answers it with a random live broker, since clients cannot reach the controllers.
        """
        states = [state for node in self.nodes if (state := node.quorum_state()) is not None]
        if not states:
            return None
        leader, _ = max(states, key=lambda state: state[1])
        return leader

    def format_storage(self) -> str:
        """Format every node's storage for one cluster id: the one the nodes formatted already
        have, else a new one. Formatted nodes are left as they are.

        Returns:
            The cluster id.

        Raises:
            MissingToolError: Java is not installed.
            RuntimeError: formatting failed, or the nodes were formatted for different
                clusters (the message names them).
        """
        found = {node.node_id: cluster_id_of(node) for node in self.nodes if node.formatted}
        ids = {cluster_id for cluster_id in found.values() if cluster_id is not None}
        if len(ids) > 1 or len(ids) < len(set(found.values())):
            raise RuntimeError(
                f"the Kafka nodes' storage belongs to different clusters ({found}): "
                "remove their data directories and start again"
            )
        cluster_id = ids.pop() if ids else _new_cluster_id()
        for node in self.nodes:
            node.format_storage(cluster_id)
        return cluster_id


async def wait_for_brokers(kafka: KafkaTarget, count: int, *, wait_seconds: float) -> None:
    """Wait until ``count`` brokers have registered with the cluster at ``kafka``.

    Raises:
        KafkaUnavailableError: fewer within ``wait_seconds`` (the message says how many).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    brokers = 0
    while loop.time() < deadline:
        brokers = await wait_for_kafka(kafka, wait_seconds=max(deadline - loop.time(), 1.0))
        if brokers >= count:
            return
        await asyncio.sleep(0.5)
    raise KafkaUnavailableError(
        f"{brokers} of {count} Kafka brokers at {kafka} registered within {wait_seconds:.0f} s"
    )


async def wait_for_topics(
    kafka: KafkaTarget, specs: Iterable[TopicSpec], in_sync: int, *, wait_seconds: float
) -> None:
    """Wait until every topic of ``specs`` shows all its partitions with ``in_sync`` replicas in
    sync: a topic just created is known to the other brokers a moment later.

    Raises:
        KafkaUnavailableError: not so within ``wait_seconds`` (the message names the topics).
    """
    wanted = {spec.name: spec.partitions for spec in specs}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    missing = sorted(wanted)
    while loop.time() < deadline:
        admin = new_admin(kafka, request_timeout_ms=5000)
        try:
            await asyncio.wait_for(admin.start(), 10)
            described = await asyncio.wait_for(admin.describe_topics(list(wanted)), 10)
        except (KafkaError, OSError, TimeoutError):
            described = []
        finally:
            await admin.close()
        ready = {
            topic["topic"]
            for topic in described
            if len(topic["partitions"]) == wanted.get(topic["topic"])
            and all(len(partition["isr"]) >= in_sync for partition in topic["partitions"])
        }
        missing = sorted(set(wanted) - ready)
        if not missing:
            return
        await asyncio.sleep(0.5)
    raise KafkaUnavailableError(
        f"topics not in sync on {in_sync} brokers at {kafka} within {wait_seconds:.0f} s: "
        + ", ".join(missing)
    )


def broker_version(log_path: Path) -> str | None:
    """The version the broker printed of itself at start ("Kafka version: 4.1.1")."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return None
    found = re.findall(r"Kafka version: (\S+)", text)
    return f"Apache Kafka {found[-1]}" if found else None


@dataclass(frozen=True)
class TopicReport:
    """What applying the topic catalog did."""

    created: list[str]
    existing: list[str]


async def apply_topic_catalog(
    bootstrap_servers: KafkaTarget, specs: Iterable[TopicSpec], *, wait_seconds: float = 30.0
) -> TopicReport:
    """Create every topic of the catalog that does not exist yet; existing ones are left alone.

    A node just restarted is listed in the cluster's metadata before it serves requests, and
    refuses them meanwhile (``NodeNotReadyError``): errors Kafka calls retriable are tried
    again for ``wait_seconds``.

    Raises:
        KafkaUnavailableError: a topic could not be created.
        KafkaError: Kafka still refused after ``wait_seconds``.
    """
    specs = list(specs)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    while True:
        try:
            return await _apply_topic_catalog(bootstrap_servers, specs)
        except KafkaError as exc:
            if not exc.retriable or loop.time() > deadline:
                raise
        await asyncio.sleep(0.5)


async def _apply_topic_catalog(
    bootstrap_servers: KafkaTarget, specs: list[TopicSpec]
) -> TopicReport:
    admin = new_admin(bootstrap_servers, request_timeout_ms=15000)
    await admin.start()
    try:
        brokers = len((await admin.describe_cluster())["brokers"])
        present = set(await admin.list_topics())
        missing = [spec for spec in specs if spec.name not in present]
        created: list[str] = []
        for spec in missing:
            topic = NewTopic(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=spec.replication_for(brokers),
                topic_configs=spec.config(brokers=brokers),
            )
            response = await admin.create_topics([topic], timeout_ms=15000)
            for _name, code, *rest in response.topic_errors:
                if code not in (0, TopicAlreadyExistsError.errno):
                    raise KafkaUnavailableError(f"creating topic {spec.name} failed: {code} {rest}")
            created.append(spec.name)
        return TopicReport(
            created=created, existing=sorted(spec.name for spec in specs if spec.name in present)
        )
    finally:
        await admin.close()


_RESOURCE_TYPES = {"Topic": 2, "Group": 3, "Cluster": 4}
_OPERATIONS = {
    "Read": 3, "Write": 4, "Describe": 8, "DescribeConfigs": 10, "IdempotentWrite": 12,
}  # fmt: skip
_LITERAL = 3
_ALLOW = 3


async def apply_acls(kafka: KafkaTarget, acls: Iterable[KafkaAcl]) -> int:
    """Create ``acls`` (creating one that exists changes nothing); return how many there are.

    aiokafka's admin client has no ``create_acls`` (0.14): the requests are its own
    ``CreateAclsRequest``, one rule each, negotiated to the broker's version.

    Raises:
        KafkaUnavailableError: the broker refused a rule (the message says which and why).
    """
    acls = list(acls)
    admin = new_admin(kafka, request_timeout_ms=15000)
    await admin.start()
    try:
        for acl in acls:
            request = CreateAclsRequest(
                resource_type=_RESOURCE_TYPES[acl.resource_type],
                resource_name=acl.resource_name,
                resource_pattern_type_filter=_LITERAL,
                principal=f"User:{acl.user}",
                host="*",
                operation=_OPERATIONS[acl.operation],
                permission_type=_ALLOW,
            )
            # aiokafka 0.14 has no public create_acls: its own request, sent the admin way.
            response = await admin._send_request(request)
            for code, message in response.creation_responses:
                if code != 0:
                    raise KafkaUnavailableError(
                        f"creating the ACL {acl} failed: {for_code(code).__name__} {message}"
                    )
        return len(acls)
    finally:
        await admin.close()
