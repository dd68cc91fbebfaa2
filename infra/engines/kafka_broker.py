"""The embedded Apache Kafka broker: jars from Maven Central, KRaft mode, one node on 127.0.0.1."""

import base64
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from contracts.topics import TopicSpec
from infra.config.kafka import ADMIN_USER, SASL_MECHANISM, KafkaTarget, scram_jaas_config
from infra.engines.kafka_security import KafkaAcl, TlsFiles
from infra.engines.processes import require_tool
from runtime import KafkaUnavailableError, new_admin

__all__ = [
    "BrokerSecurity",
    "KafkaBroker",
    "TopicReport",
    "apply_acls",
    "apply_topic_catalog",
    "broker_version",
    "ensure_kafka_jars",
    "fetch_maven_jars",
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
    """One Kafka process in KRaft mode acting as broker and controller, on loopback."""

    libs: Path
    data_dir: Path
    port: int
    controller_port: int
    host: str = "127.0.0.1"
    java: str = "java"
    heap: str = "512m"
    security: BrokerSecurity | None = None
    """None: one PLAINTEXT listener; else SASL_SSL (SCRAM-SHA-512) and ACLs."""

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
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://{self.host}:{self.port},CONTROLLER://{self.host}:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://{self.host}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(logs),
            # One node: the internal topics cannot have more replicas than there are brokers.
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Topics come from the catalog only, never from a mistyped name.
            "auto.create.topics.enable": "false",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.security is not None:
            settings.update(self._secured_settings(self.security))
        # Secured, the file holds the super user's password: readable by this user only.
        self.config_path.unlink(missing_ok=True)
        fd = os.open(self.config_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.writelines(f"{k}={v}\n" for k, v in settings.items())
        return self.config_path

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

    def format_storage(self) -> None:
        """Format the KRaft storage once; a formatted data directory is left as it is.

        Raises:
            MissingToolError: Java is not installed.
            RuntimeError: formatting failed (the tool's output is in the message).
        """
        config = self.write_config()
        marker = self.data_dir / _SECURED_MARKER
        if (self.data_dir / "log" / "meta.properties").exists():
            if self.security is not None and not marker.exists():
                raise RuntimeError(
                    f"the Kafka storage in {self.data_dir} was formatted without SCRAM users, "
                    "so it cannot be secured: `saga down`, remove that folder (its topics "
                    "go with it) and `saga up` again"
                )
            return
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
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
    bootstrap_servers: KafkaTarget, specs: Iterable[TopicSpec]
) -> TopicReport:
    """Create every topic of the catalog that does not exist yet; existing ones are left alone."""
    specs = list(specs)
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
