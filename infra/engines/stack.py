"""The whole stack on one machine: what `saga up`, `saga ps` and `saga down` act on.

Each service (and the orchestrator's worker) may run as several copies (``saga up --scale
payment=2``): copy N is the process ``payment-N`` (the first keeps the name ``payment``),
with its own log, its own ports (:meth:`infra.config.settings.Settings.service_port`) and
``SAGA_INSTANCE=N``. The scale is kept in the run directory, so a later ``saga up`` keeps it.
"""

import asyncio
import functools
import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from contracts.codec import subject_for
from contracts.topics import all_topics
from infra.config.api_tokens import ensure_dev_token
from infra.config.databases import DATABASES_FILE
from infra.config.kafka import KafkaConnection, kafka_connection
from infra.config.payload_codec import CODEC_PATH, data_converter, ensure_development_keys
from infra.config.sdk_metrics import SDK_METRICS_HOST
from infra.config.settings import (
    TOPOLOGY_FILE,
    ConfigurationError,
    Settings,
    instance_name,
    kept_topology,
)
from infra.config.temporal import frontend_tls_dir, temporal_connection
from infra.engines.kafka_broker import (
    BrokerSecurity,
    KafkaBroker,
    KafkaCluster,
    apply_acls,
    apply_topic_catalog,
    broker_version,
    ensure_kafka_jars,
    wait_for_brokers,
    wait_for_topics,
)
from infra.engines.kafka_security import (
    KAFKA_ACCESS,
    ensure_kafka_secrets,
    ensure_tls,
    kafka_acls,
    kafka_user_of,
)
from infra.engines.postgres import (
    PostgresServer,
    find_postgres_bin,
    read_postgres_secrets,
    stop_postgres,
)
from infra.engines.private_files import ensure_passwords, write_private
from infra.engines.processes import (
    MissingToolError,
    ProcessRecord,
    ProcessTable,
    listener_of,
    log_tail,
    port_in_use,
    require_tool,
    spawn,
    stop_processes,
)
from infra.engines.prometheus import PrometheusServer, ScrapeTarget, prometheus_version
from infra.engines.schema_registry import (
    RegistryDatabase,
    RegistryUser,
    SchemaRegistryServer,
    ensure_apicurio,
    find_java,
)
from infra.engines.temporal_build import (
    TemporalServerBuild,
    TemporalUiBuild,
    ensure_temporal_server,
    ensure_temporal_ui,
)
from infra.engines.temporal_full import (
    TemporalDatabase,
    TemporalFullServer,
    TemporalPorts,
    ensure_frontend_tls,
    provision_temporal_database,
)
from infra.engines.temporal_server import TemporalDevServer, find_temporal_cli, temporal_version
from infra.engines.temporal_ui import TemporalUiServer
from runtime import SchemaRegistry, SchemaRegistryError, wait_for_kafka, wait_for_temporal

_T = TypeVar("_T")

__all__ = [
    "COMPONENTS",
    "ENGINES",
    "KAFKA_NODES",
    "SERVICES",
    "ComponentStatus",
    "Stack",
    "StackError",
    "parse_scale",
    "split_instance",
]

SERVICES: tuple[str, ...] = ("payment", "inventory", "shipping", "orchestrator")
KAFKA_NODES: tuple[str, ...] = ("kafka-1", "kafka-2", "kafka-3")
"""The cluster topology's Kafka nodes: brokers and, together, the controller quorum."""
CLUSTER_ENGINES: tuple[str, ...] = (
    "postgres",
    *KAFKA_NODES,
    "temporal",
    "temporal-ui",
    "registry",
)
ENGINES: tuple[str, ...] = (
    "postgres",
    "kafka",
    *KAFKA_NODES,
    "temporal",
    "temporal-ui",
    "registry",
    "prometheus",
)
"""Every engine a stack may start (each topology starts some of them)."""
COMPONENTS: tuple[str, ...] = (*ENGINES, *SERVICES, "api")
TEMPORAL_METRICS_OFFSET = 11
"""Temporal's metrics listen this far above its frontend port (dev server and full server)."""
TEMPORAL_FULL_SPAN = TEMPORAL_METRICS_OFFSET
"""The full server's listeners sit at its frontend port up to this far above it."""
_SMALLINT_MAX = 32767
REGISTRY_ROLE = "registry"
"""The PostgreSQL role (and database) of the cluster topology's schema registry."""
REGISTRY_SECRETS_FILE = "registry-secrets.json"
"""The secured registry's passwords, in the run directory (mode 0600)."""
REGISTRY_USERS: dict[str, str] = {"saga-admin": "sr-admin", "saga-services": "sr-developer"}
"""A secured registry's users and their roles: `saga up` registers the catalog and sets the
compatibility rules as ``saga-admin``; the services publish and read as ``saga-services``."""
TEMPORAL_ROLE = "temporal"
"""The PostgreSQL role of Temporal's full server (it owns ``temporal`` and
``temporal_visibility``)."""
CLUSTER_COPIES = 2
"""Copies of every service (and of the orchestrator's worker) in the cluster topology."""

_SCALE_FILE = "scale.json"
_MAX_COPIES = 20


def parse_scale(values: Iterable[str]) -> dict[str, int]:
    """``--scale`` values (``payment=2``, or ``payment=2,inventory=3``) as copies per service.

    Raises:
        ConfigurationError: a value is not ``SERVICE=N`` with a known service and 1 <= N <= 20.
    """
    scale: dict[str, int] = {}
    for value in values:
        for item in filter(None, (part.strip() for part in value.split(","))):
            service, sep, count = item.partition("=")
            service = service.strip()
            if not sep or service not in SERVICES or not count.strip().isdigit():
                raise ConfigurationError(
                    f"bad --scale {item!r}: expected SERVICE=N with SERVICE one of "
                    f"{', '.join(SERVICES)} (e.g. --scale payment=2,inventory=2)"
                )
            copies = int(count)
            if not 1 <= copies <= _MAX_COPIES:
                raise ConfigurationError(
                    f"bad --scale {item!r}: a service runs as 1 to {_MAX_COPIES} copies"
                )
            scale[service] = copies
    return scale


def split_instance(name: str) -> tuple[str, int]:
    """A process name as its component and copy number: ``payment-2`` → (``payment``, 2)."""
    base, sep, number = name.rpartition("-")
    if sep and base in SERVICES and number.isdigit() and int(number) >= 2:
        return base, int(number)
    return name, 1


class StackError(Exception):
    """The stack cannot be brought up as asked; the message says what to do."""


@dataclass(frozen=True)
class ComponentStatus:
    """One component as `saga ps` shows it."""

    name: str
    state: str  # running, unhealthy, stopped, external, unreachable
    address: str
    pid: int | None
    version: str | None
    log: str | None
    metrics: tuple[str, ...] = ()
    """Where its Prometheus metrics are: ``/metrics`` and the Temporal SDK's exporter."""

    def as_dict(self) -> dict[str, object]:
        """A JSON-ready mapping."""
        return {
            "name": self.name,
            "state": self.state,
            "address": self.address,
            "pid": self.pid,
            "version": self.version,
            "log": self.log,
            "metrics": list(self.metrics),
        }


class Stack:
    """The engines and services of one run directory."""

    def __init__(
        self,
        settings: Settings,
        *,
        say: Callable[[str], None] = print,
        scale: Mapping[str, int] | None = None,
    ) -> None:
        """``scale``: copies of the services named (the others keep the scale of the run
        directory's last ``up``, 1 at first); it is kept by :meth:`up`."""
        self._settings = settings
        self._run_dir = settings.run_dir.resolve()
        self._table = ProcessTable(self._run_dir)
        self._say = say
        self._cluster = settings.topology == "cluster"
        copies = CLUSTER_COPIES if self._cluster else 1
        self._scale = {service: copies for service in SERVICES}
        if kept_topology(self._run_dir) in (None, settings.topology):
            self._scale.update(self._kept_scale())  # another topology starts at its own
        self._scale.update(scale or {})

    # -- what each component is ------------------------------------------------------------

    @property
    def scale(self) -> dict[str, int]:
        """How many copies of each service (and of the orchestrator's worker) run."""
        return dict(self._scale)

    def instances(self) -> list[str]:
        """Every process of the stack by name: the embedded engines, each copy of each service
        (``payment``, ``payment-2``...), then the API."""
        return [*self.engines(), *self._service_instances(), "api"]

    def engines(self) -> list[str]:
        """The engines this stack starts itself, in the order they start: in the cluster
        topology PostgreSQL, the three Kafka nodes, Temporal's full server and its Web UI;
        else the embedded broker and Temporal's dev server (each unless an existing one is
        used)."""
        if self._cluster:
            return list(CLUSTER_ENGINES)
        return [name for name in ("kafka", "temporal", "registry") if self._embedded(name)]

    def components(self) -> list[str]:
        """What `saga ps` lists: this topology's engines (used or not), Prometheus with
        monitoring on, services and API."""
        engines = list(CLUSTER_ENGINES) if self._cluster else ["kafka", "temporal", "registry"]
        monitoring = ["prometheus"] if self._settings.monitoring else []
        return [*engines, *monitoring, *SERVICES, "api"]

    def _service_instances(self) -> list[str]:
        return [
            instance_name(service, copy)
            for service in SERVICES
            for copy in range(1, self._scale[service] + 1)
        ]

    def _kept_scale(self) -> dict[str, int]:
        try:
            kept = json.loads((self._run_dir / _SCALE_FILE).read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(kept, dict):
            return {}
        return {
            service: copies
            for service, copies in kept.items()
            if service in SERVICES and isinstance(copies, int) and 1 <= copies <= _MAX_COPIES
        }

    def _keep_scale(self) -> None:
        path = self._run_dir / _SCALE_FILE
        tmp = path.with_name(f".{_SCALE_FILE}.tmp")
        tmp.write_text(json.dumps(self._scale, indent=2))
        tmp.replace(path)

    def _log_path(self, name: str) -> Path:
        return self._run_dir / "logs" / f"{name}.log"

    def _address(self, name: str) -> str:
        s = self._settings
        if name in ("postgres", *KAFKA_NODES):
            host, port = self._listen_port(name)
            return f"{host}:{port}"
        if name == "kafka":
            return s.kafka_bootstrap_servers
        if name == "temporal" and self._cluster:
            return s.temporal_address
        if name == "temporal-ui":
            return s.temporal_ui_url
        if name == "registry":
            return s.schema_registry_url
        if name == "prometheus":
            return f"http://127.0.0.1:{s.prometheus_port}"
        if name == "temporal":
            return f"{s.temporal_address} (Web UI {s.temporal_ui_url})"
        if name == "api":
            return s.api_url
        service, copy = split_instance(name)
        return f"http://{s.api_host}:{s.service_port(service, copy)}"

    def _listen_port(self, name: str) -> tuple[str, int]:
        s = self._settings
        if name == "postgres":
            return "127.0.0.1", s.postgres_port
        if name in KAFKA_NODES:
            return "127.0.0.1", s.kafka_node_ports()[KAFKA_NODES.index(name)]
        if name == "kafka":
            return "127.0.0.1", s.kafka_port
        if name == "temporal":
            return "127.0.0.1", s.temporal_port
        if name == "temporal-ui":
            return "127.0.0.1", s.temporal_ui_port
        if name == "registry":
            return "127.0.0.1", s.schema_registry_port
        if name == "prometheus":
            return "127.0.0.1", s.prometheus_port
        if name == "api":
            return s.api_host, s.api_port
        service, copy = split_instance(name)
        return s.api_host, s.service_port(service, copy)

    def _sdk_metrics_port(self, name: str) -> int | None:
        if name in ENGINES:
            return None
        service, copy = split_instance(name)
        return self._settings.sdk_metrics_port(service, copy)

    def metrics_urls(self, name: str) -> tuple[str, ...]:
        """Where process ``name`` (a component, or a copy such as ``payment-2``) serves
        Prometheus metrics (none for Kafka: the orchestrator worker exports the cluster's
        figures)."""
        s = self._settings
        if name in ("postgres", "kafka", *KAFKA_NODES, "temporal-ui"):
            return ()
        if name == "temporal":
            # Either server, when the stack runs it: the dev server's and the full server's
            # metrics listen at the same place.
            port = s.temporal_port + TEMPORAL_METRICS_OFFSET
            return (f"http://127.0.0.1:{port}/metrics",) if self._embedded(name) else ()
        if name == "registry":
            port = s.schema_registry_port + 1  # its management interface
            return (f"http://127.0.0.1:{port}/metrics",) if self._embedded(name) else ()
        if name == "prometheus":
            return (f"{self._address(name)}/metrics",)
        urls = [f"{self._address(name)}/metrics"]
        sdk_port = self._sdk_metrics_port(name)
        if sdk_port is not None:
            urls.append(f"http://{SDK_METRICS_HOST}:{sdk_port}/metrics")
        return tuple(urls)

    def scrape_targets(self) -> list[ScrapeTarget]:
        """Every metrics endpoint of this stack's processes, by scrape job: each copy of each
        service and the API (``saga-processes``, and ``saga-temporal-sdk`` for the Temporal
        SDK's exporter), the engines the stack runs that serve metrics (``temporal-server``,
        ``schema-registry``) and Prometheus itself."""
        jobs = {"temporal": "temporal-server", "registry": "schema-registry"}
        names = [*self.engines(), *self._service_instances(), "api", "prometheus"]
        targets = []
        for name in names:
            for n, url in enumerate(self.metrics_urls(name)):
                job = jobs.get(name, name if name == "prometheus" else "saga-processes")
                if job == "saga-processes" and n > 0:
                    job = "saga-temporal-sdk"
                parts = urlsplit(url)
                targets.append(ScrapeTarget(job, name, parts.netloc, parts.path))
        return targets

    def _embedded(self, name: str) -> bool:
        if self._cluster:
            return True
        if name == "kafka":
            return self._settings.kafka_embedded
        if name == "temporal":
            return self._settings.temporal_embedded
        if name == "registry":
            return self._settings.schema_registry_embedded
        return True

    @property
    def kafka_secured(self) -> bool:
        """Whether the stack's broker is the embedded one, secured (``SAGA_KAFKA_SECURED``)."""
        return self._settings.kafka_secured and self._settings.kafka_embedded

    def _kafka_broker(self, security: BrokerSecurity | None = None) -> KafkaBroker:
        s = self._settings
        libs = ensure_kafka_jars(
            s.kafka_cache_dir, s.kafka_version, maven=s.maven, progress=self._say
        )
        return KafkaBroker(
            libs=libs,
            data_dir=self._run_dir / "kafka",
            port=s.kafka_port,
            controller_port=s.kafka_controller_port,
            java=s.java,
            heap=s.kafka_heap,
            security=security,
        )

    def _kafka_security(self) -> BrokerSecurity:
        """The run's SCRAM passwords and TLS files, made the first time."""
        return BrokerSecurity(
            tls=ensure_tls(self._run_dir), passwords=ensure_kafka_secrets(self._run_dir)
        )

    def kafka_connection(self, process: str | None = None) -> KafkaConnection:
        """How ``process`` (by default `saga up` itself: the super user when secured) connects."""
        admin = kafka_connection(self._settings)
        if process is None or not self.kafka_secured:
            return admin
        user = kafka_user_of(process)
        return admin.as_user(user, self._kafka_security().passwords[user])

    def _kafka_env(self, name: str) -> dict[str, str]:
        """The Kafka settings of process ``name`` of a secured stack: its own SCRAM user."""
        if not self.kafka_secured or name in ENGINES:
            return {}
        kafka = self.kafka_connection(name)
        assert kafka.sasl_password is not None
        return {
            "SAGA_KAFKA_SECURITY_PROTOCOL": kafka.security_protocol,
            "SAGA_KAFKA_SASL_USERNAME": kafka.sasl_username or "",
            "SAGA_KAFKA_SASL_PASSWORD": kafka.sasl_password.get_secret_value(),
            "SAGA_KAFKA_SSL_CAFILE": str(kafka.ssl_cafile),
        }

    def _temporal_server(self) -> TemporalDevServer:
        s = self._settings
        return TemporalDevServer(
            cli=find_temporal_cli(s.temporal_cli),
            port=s.temporal_port,
            ui_port=s.temporal_ui_port,
            http_port=s.temporal_port + 10,
            metrics_port=s.temporal_port + TEMPORAL_METRICS_OFFSET,
            db_file=self._run_dir / "temporal" / "temporal.db"
            if s.temporal_storage == "file"
            else None,
            namespace=s.temporal_namespace,
            ui_codec_endpoint=f"{s.api_url}{CODEC_PATH}" if s.payload_encryption else None,
        )

    def _postgres(self) -> PostgresServer:
        s = self._settings
        return PostgresServer(
            bin_dir=find_postgres_bin(s.postgres_bin_dir),
            run_dir=self._run_dir,
            port=s.postgres_port,
        )

    def _kafka_cluster(self) -> KafkaCluster:
        s = self._settings
        libs = ensure_kafka_jars(
            s.kafka_cache_dir, s.kafka_version, maven=s.maven, progress=self._say
        )
        ports = [
            (port, s.kafka_controller_port + n * s.kafka_node_port_step)
            for n, port in enumerate(s.kafka_node_ports())
        ]
        return KafkaCluster.on_ports(libs, self._run_dir / "kafka", ports, java=s.java)

    def kafka_controller(self) -> str | None:
        """The Kafka node (``kafka-N``) that is the active KRaft controller, in the cluster
        topology; None in the embedded one, or before the nodes elected one."""
        if not self._cluster:
            return None
        node = self._kafka_cluster().active_controller()
        if node is None or not 1 <= node <= len(KAFKA_NODES):
            return None
        return KAFKA_NODES[node - 1]

    @functools.cached_property
    def _temporal_server_build(self) -> TemporalServerBuild:
        """Temporal's server and SQL tool, built the first time this stack needs them."""
        s = self._settings
        return ensure_temporal_server(
            s.temporal_server_cache_dir,
            s.temporal_server_version,
            go=s.go,
            toolchain=s.go_toolchain,
            progress=self._say,
        )

    @functools.cached_property
    def _temporal_ui_build(self) -> TemporalUiBuild:
        """Temporal's Web UI server, built the first time this stack needs it."""
        s = self._settings
        return ensure_temporal_ui(
            s.temporal_ui_cache_dir,
            s.temporal_ui_version,
            go=s.go,
            toolchain=s.go_toolchain,
            progress=self._say,
        )

    def _temporal_full(self) -> TemporalFullServer:
        """Temporal's full server of the cluster topology, on the stack's PostgreSQL: its
        frontend at ``temporal_address``, its other listeners just above (its HTTP API 10
        above, its metrics 11 above, as the dev server's)."""
        s = self._settings
        build = self._temporal_server_build
        base = s.temporal_port
        ports = TemporalPorts(
            frontend=base,
            frontend_http=base + 10,
            frontend_membership=base + 1,
            history=base + 2,
            history_membership=base + 3,
            matching=base + 4,
            matching_membership=base + 5,
            worker=base + 6,
            worker_membership=base + 7,
            metrics=base + TEMPORAL_METRICS_OFFSET,
        )
        password = (read_postgres_secrets(self._run_dir) or {}).get(TEMPORAL_ROLE, "")
        database = TemporalDatabase(
            host="127.0.0.1", port=s.postgres_port, user=TEMPORAL_ROLE, password=password
        )
        # The run's certificates mean mTLS: made by `saga up` with SAGA_TEMPORAL_MTLS, removed
        # by one without, so that every process of the run finds out the same way.
        folder = frontend_tls_dir(self._run_dir)
        mtls = s.temporal_mtls or (folder / "client.pem").is_file()
        return TemporalFullServer(
            build,
            self._run_dir,
            ports,
            database,
            namespace=s.temporal_namespace,
            tls=ensure_frontend_tls(folder) if mtls else None,
        )

    def _temporal_ui(self) -> TemporalUiServer:
        """The cluster topology's Web UI: Temporal's UI server in front of the full server's
        frontend, on ``temporal_ui_port``, with the codec endpoint and TLS the dev server's UI
        would have."""
        s = self._settings
        build = self._temporal_ui_build
        return TemporalUiServer(
            build,
            self._run_dir,
            port=s.temporal_ui_port,
            temporal_address=s.temporal_address,
            namespace=s.temporal_namespace,
            codec_endpoint=f"{s.api_url}{CODEC_PATH}" if s.payload_encryption else None,
            tls=self._temporal_full().tls,
        )

    @functools.cached_property
    def _registry_app(self) -> Path:
        """Apicurio Registry's application, fetched the first time this stack needs it."""
        s = self._settings
        return ensure_apicurio(
            s.schema_registry_cache_dir,
            s.schema_registry_version,
            maven=s.maven,
            progress=self._say,
        )

    @property
    def registry_secured(self) -> bool:
        """Whether the stack's registry asks for passwords: the embedded one of a secured
        stack (``SAGA_KAFKA_SECURED``)."""
        return self._settings.kafka_secured and self._embedded("registry")

    def registry_passwords(self) -> dict[str, str]:
        """The secured registry's users and their passwords, made the first time."""
        path = self._run_dir / REGISTRY_SECRETS_FILE
        try:
            kept = json.loads(path.read_text())
        except (OSError, ValueError):
            kept = None
        return ensure_passwords(path, kept, REGISTRY_USERS, keep_others=False)

    def _schema_registry(self) -> SchemaRegistryServer:
        """The stack's Apicurio Registry: its schemas in an H2 file under the run directory,
        or in PostgreSQL in the cluster topology; users and passwords when secured."""
        s = self._settings
        try:
            java = find_java(s.schema_registry_java)
        except RuntimeError as exc:
            raise StackError(str(exc)) from None
        database = None
        if self._cluster:
            password = (read_postgres_secrets(self._run_dir) or {}).get(REGISTRY_ROLE, "")
            database = RegistryDatabase(
                "127.0.0.1", s.postgres_port, REGISTRY_ROLE, REGISTRY_ROLE, password
            )
        users: dict[str, RegistryUser] = {}
        if self.registry_secured:
            passwords = self.registry_passwords()
            users = {
                name: RegistryUser(passwords[name], role) for name, role in REGISTRY_USERS.items()
            }
        return SchemaRegistryServer(
            app=self._registry_app,
            run_dir=self._run_dir,
            port=s.schema_registry_port,
            java=java,
            heap=s.schema_registry_heap,
            database=database,
            users=users,
        )

    def _registry_env(self, name: str) -> dict[str, str]:
        """The registry credentials of process ``name`` of a secured stack."""
        if not self.registry_secured or name in ENGINES:
            return {}
        user = "saga-services"
        return {
            "SAGA_SCHEMA_REGISTRY_USERNAME": user,
            "SAGA_SCHEMA_REGISTRY_PASSWORD": self.registry_passwords()[user],
        }

    def _prometheus(self) -> PrometheusServer:
        s = self._settings
        binary = require_tool(
            s.prometheus,
            "`saga up --monitoring`",
            "run `saga fetch` (it installs Debian's prometheus package) or set SAGA_PROMETHEUS",
        )
        return PrometheusServer(
            binary, self._run_dir, s.prometheus_port, retention=s.prometheus_retention
        )

    def write_prometheus_config(self) -> Path:
        """Write Prometheus's configuration for this stack (its targets, the alert rules with
        these settings' thresholds) into the run directory; return its path."""
        s = self._settings
        interval = f"{round(s.prometheus_interval_seconds * 1000)}ms"
        return self._prometheus().write_config(
            self.scrape_targets(),
            scrape_interval=interval,
            evaluation_interval=interval,
            stuck_minutes=s.alert_stuck_minutes,
        )

    def command(self, name: str) -> list[str]:
        """The command line that runs ``name`` under these settings."""
        if name == "prometheus":
            return self._prometheus().command()
        if name == "postgres":
            return self._postgres().command()
        if name in KAFKA_NODES:
            return self._kafka_cluster().node(KAFKA_NODES.index(name) + 1).command()
        if name == "temporal" and self._cluster:
            return self._temporal_full().command()
        if name == "temporal-ui":
            return self._temporal_ui().command()
        if name == "kafka":
            return self._kafka_broker().command()
        if name == "temporal":
            return self._temporal_server().command()
        if name == "registry":
            return self._schema_registry().command()
        if name == "api":
            return [sys.executable, "-m", "orchestrator.api"]
        service, _ = split_instance(name)
        if service == "orchestrator":
            return [sys.executable, "-m", "orchestrator.worker"]
        return [sys.executable, "-m", f"workers.{service}"]

    # -- up ----------------------------------------------------------------------------------

    def up(self) -> None:
        """Start every process of the stack that is not running yet (each copy of each service,
        at the scale given) and wait until each is healthy; stop copies beyond the scale; then
        Prometheus with monitoring on (:meth:`start_monitoring`).

        Raises:
            StackError: a port is taken, a component did not become healthy, or an
                external engine is unreachable.
            ConfigurationError: payload encryption is on and its keys cannot be used.
        """
        self._check_topology()
        self._check_ports()
        self._run_dir.mkdir(parents=True, exist_ok=True)
        (self._run_dir / TOPOLOGY_FILE).write_text(self._settings.topology + "\n")
        made = ensure_development_keys(self._settings)
        if made is not None:
            self._say(f"{'payloads':<12} encrypted with the development keys of {made}")
        data_converter(self._settings)  # unusable payload keys stop `up` before it starts
        self._keep_scale()
        if self._cluster:
            # The stores and Temporal's persistence come first: Temporal's server is set up on
            # PostgreSQL before it starts, and the services find their databases' URLs.
            self._start(["postgres"])
            self._provision_databases()
            self._start([*KAFKA_NODES, "temporal", "registry"])
        else:
            self._start(self.engines())
        asyncio.run(self._wait_for_engines())
        if self._cluster:
            self._start_web_ui()
        self._stop_copies_beyond_scale()
        if self._settings.mode == "development":
            ensure_dev_token(self._run_dir)  # the API accepts it; `saga token` prints it
        self._start([*self._service_instances(), "api"])
        asyncio.run(self._wait_for_services())
        prometheus = self._table.get("prometheus")
        if self._settings.monitoring or (prometheus is not None and prometheus.is_alive()):
            self.start_monitoring()  # a running one learns the new scale's targets

    def start_monitoring(self) -> None:
        """Start Prometheus on this stack's targets and wait until it is ready; one already
        running is given the targets and rules of these settings (SIGHUP reloads them).

        Raises:
            StackError: it did not become ready, or its port is taken.
            MissingToolError: Prometheus is not installed.
        """
        running = self._table.get("prometheus")
        if running is not None and running.is_alive():
            self.write_prometheus_config()
            os.kill(running.pid, signal.SIGHUP)
            self._say(f"{'prometheus':<12} already running (pid {running.pid}): reloaded")
            return
        self._start(["prometheus"])
        record = self._table.get("prometheus")
        assert record is not None
        deadline = time.monotonic() + self._settings.startup_timeout_seconds
        try:
            self._prometheus().wait_until_ready(record, deadline)
        except RuntimeError as exc:
            raise StackError(f"{exc}\n  (full log: saga logs prometheus)") from None
        self._say(f"{'prometheus':<12} healthy at {self._address('prometheus')}")

    def _check_topology(self) -> None:
        """A run directory holds one topology at a time: switching needs a `saga down` first."""
        kept = kept_topology(self._run_dir)
        running = [
            name for name in self._table.names() if (r := self._table.get(name)) and r.is_alive()
        ]
        if kept is not None and kept != self._settings.topology and running:
            raise StackError(
                f"the stack in {self._run_dir} runs the {kept} topology: stop it with "
                f"`saga down` before starting the {self._settings.topology} one there, or use "
                "another SAGA_RUN_DIR"
            )

    def _check_ports(self) -> None:
        """Every process of the stack listens on ports of its own, within range."""
        highest = self._settings.temporal_port + TEMPORAL_FULL_SPAN
        if self._cluster and highest > _SMALLINT_MAX:
            # The full server keeps its services' membership ports in a smallint column.
            raise StackError(
                f"Temporal's full server would listen up to port {highest}, and it keeps its "
                f"ports as PostgreSQL smallints (at most {_SMALLINT_MAX}): set "
                f"SAGA_TEMPORAL_ADDRESS to a port below {_SMALLINT_MAX - TEMPORAL_FULL_SPAN}"
            )
        owners: dict[int, str] = {}
        for name in [*self._service_instances(), "api"]:
            ports = [self._listen_port(name)[1], self._sdk_metrics_port(name)]
            for port in filter(None, ports):
                if port > 65535:
                    raise StackError(
                        f"{name} would listen on port {port}: lower its service's port, "
                        "SAGA_INSTANCE_PORT_STEP or SAGA_SDK_METRICS_PORT_OFFSET"
                    )
                if port in owners:
                    raise StackError(
                        f"{owners[port]} and {name} would both listen on port {port}: change "
                        "SAGA_INSTANCE_PORT_STEP or the services' ports (see `saga config`)"
                    )
                owners[port] = name

    def _stop_copies_beyond_scale(self) -> None:
        wanted = set(self._service_instances())
        extra = [
            name
            for name in self._table.names()
            if split_instance(name)[0] in SERVICES and name not in wanted
        ]
        records = [record for record in map(self._table.get, extra) if record is not None]
        for record in stop_processes(records):
            self._say(f"{record.name:<12} stopped (pid {record.pid}), beyond the scale")
        for name in extra:
            self._table.remove(name)

    def _start(self, names: list[str]) -> None:
        for name in names:
            running = self._table.get(name)
            if running is not None and running.is_alive():
                self._say(f"{name:<12} already running (pid {running.pid})")
                if self.started_otherwise(name):
                    self._say(
                        f"{'':<12} warning: started with other settings than these; "
                        "`saga down && saga up` applies them"
                    )
                continue
            host, port = self._listen_port(name)
            if port_in_use(host, port):
                holder = listener_of(port) or "another process"
                raise StackError(
                    f"port {host}:{port} that {name} needs is already in use by {holder}: "
                    f"stop that process, or give {name} another port (see `saga config`)"
                )
            sdk_port = self._sdk_metrics_port(name)
            if sdk_port is not None and port_in_use(SDK_METRICS_HOST, sdk_port):
                raise StackError(
                    f"port {SDK_METRICS_HOST}:{sdk_port} for the Temporal SDK metrics of {name} "
                    "is already in use by another process: stop that process, or change "
                    "SAGA_SDK_METRICS_PORT_OFFSET (0 turns these metrics off)"
                )
            env = {
                **os.environ,
                **self._settings.as_env(),
                "SAGA_RUN_DIR": str(self._run_dir),
                "SAGA_INSTANCE": str(split_instance(name)[1]),
                **self._kafka_env(name),
                **self._registry_env(name),
            }
            cwd = self._prepare(name)
            _, record = spawn(name, self.command(name), self._log_path(name), env=env, cwd=cwd)
            self._table.put(record)
            self._say(f"{name:<12} started (pid {record.pid}), log {record.log}")

    def _prepare(self, name: str) -> Path | None:
        """What must be done before ``name`` starts (format storage, make a database cluster,
        write a configuration); the folder it runs in, if it needs one."""
        if name == "kafka":
            security = self._kafka_security() if self.kafka_secured else None
            self._kafka_broker(security).format_storage()
        elif name in KAFKA_NODES:
            self._kafka_cluster().format_storage()  # every node, once, for one cluster id
        elif name == "postgres":
            postgres = self._postgres()
            postgres.init()
            return postgres.home
        elif name == "temporal" and self._cluster:
            if not self._settings.temporal_mtls:
                shutil.rmtree(frontend_tls_dir(self._run_dir), ignore_errors=True)
            server = self._temporal_full()
            try:
                server.prepare()
            except RuntimeError as exc:
                raise StackError(str(exc)) from None
            return server.home
        elif name == "temporal-ui":
            ui = self._temporal_ui()
            ui.write_config()
            return ui.home
        elif name == "registry":
            registry = self._schema_registry()
            registry.write_config()
            return registry.home
        elif name == "prometheus":
            self.write_prometheus_config()
            return self._prometheus().home
        return None

    def _start_web_ui(self) -> None:
        """Start the cluster's Web UI once Temporal is healthy, and wait until it reaches
        Temporal's frontend."""
        self._start(["temporal-ui"])
        record = self._table.get("temporal-ui")
        assert record is not None
        deadline = time.monotonic() + self._settings.startup_timeout_seconds
        try:
            self._temporal_ui().wait_until_ready(record, deadline)
        except RuntimeError as exc:
            raise StackError(f"{exc}\n  (full log: saga logs temporal-ui)") from None
        self._say(f"{'temporal-ui':<12} healthy at {self._address('temporal-ui')}")

    def _provision_databases(self) -> None:
        """Wait for PostgreSQL, then give every service a role and a database of its own and
        record their URLs in the run directory, where every process of the run finds them."""
        postgres = self._postgres()
        record = self._table.get("postgres")
        assert record is not None
        try:
            postgres.wait_until_ready(record, timeout=self._settings.startup_timeout_seconds)
        except RuntimeError as exc:
            raise StackError(str(exc)) from None
        urls = postgres.provision(SERVICES)
        write_private(self._run_dir / DATABASES_FILE, json.dumps(urls, indent=2))
        provision_temporal_database(postgres, role=TEMPORAL_ROLE)
        postgres.provision_role(REGISTRY_ROLE, [REGISTRY_ROLE])
        self._say(
            f"{'postgres':<12} healthy at {self._address('postgres')}: a database and a "
            f"role each for {', '.join([*SERVICES, REGISTRY_ROLE])}"
        )

    def started_otherwise(self, name: str) -> bool:
        """Whether ``name`` runs with another command line than these settings give it now
        (an embedded Temporal started in memory while the settings say ``file``, a broker
        with another heap): restarting it would not give back the process that is running."""
        running = self._table.get(name)
        return running is not None and running.command != self.command(name)

    async def _wait_for_engines(self) -> None:
        s = self._settings
        timeout = s.startup_timeout_seconds

        async def kafka() -> None:
            admin = self.kafka_connection()
            if self._cluster:
                # Every node first: the catalog's topics take three replicas, two in sync.
                await self._watching(
                    "kafka-1", wait_for_brokers(admin, len(KAFKA_NODES), wait_seconds=timeout)
                )
            else:
                await self._watching("kafka", wait_for_kafka(admin, wait_seconds=timeout))
            report = await apply_topic_catalog(admin, all_topics())
            if report.created:
                self._say(f"{'kafka':<12} topics created: {', '.join(report.created)}")
            if self.kafka_secured:
                rules = await apply_acls(admin, kafka_acls(KAFKA_ACCESS))
                self._say(
                    f"{'kafka':<12} secured: SASL_SSL (SCRAM-SHA-512), {rules} ACLs for "
                    f"{', '.join(KAFKA_ACCESS)}"
                )
            if self._cluster:
                await wait_for_topics(admin, all_topics(), len(KAFKA_NODES), wait_seconds=timeout)

        async def temporal() -> None:
            if self._cluster:
                record = self._table.get("temporal")
                assert record is not None
                ready = self._temporal_full().until_ready(record, time.monotonic() + timeout)
                await self._watching("temporal", ready)
                return
            client = await self._watching(
                "temporal",
                wait_for_temporal(
                    temporal_connection(s), s.temporal_namespace, wait_seconds=timeout
                ),
            )
            del client

        async def registry() -> None:
            record = self._table.get("registry")
            if record is not None and self._embedded("registry"):
                ready = asyncio.to_thread(
                    self._schema_registry().wait_until_ready, record, time.monotonic() + timeout
                )
                await self._watching("registry", ready)
            await self._watching("registry", self._register_catalog())

        checks = [kafka(), temporal(), registry()]
        failures = [
            str(result)
            for result in await asyncio.gather(*checks, return_exceptions=True)
            if isinstance(result, BaseException)
        ]
        if failures:
            raise StackError("\n".join(failures))
        self._say(f"{'kafka':<12} healthy at {s.kafka_brokers}")
        self._say(f"{'temporal':<12} healthy at {s.temporal_address}")

    async def _register_catalog(self) -> None:
        """Register every event schema of the catalog at the registry (idempotent: a schema
        registered before keeps its id) and set each subject's compatibility level; on a
        secured registry as its administrator."""
        s = self._settings
        if self.registry_secured:
            admin = "saga-admin"
            s = s.model_copy(
                update={
                    "schema_registry_username": admin,
                    "schema_registry_password": SecretStr(self.registry_passwords()[admin]),
                }
            )
        async with SchemaRegistry.from_settings(s) as registry:
            try:
                ids = await registry.register_catalog()
            except SchemaRegistryError as exc:
                if exc.retryable:
                    raise StackError(
                        f"the schema registry at {s.schema_registry_url} cannot be reached "
                        f"({exc}): start it, or set SAGA_SCHEMA_REGISTRY_URL"
                    ) from None
                raise StackError(f"the schema registry refused the catalog: {exc}") from None
        subjects = len({subject_for(event_type) for event_type in ids})
        self._say(
            f"{'registry':<12} healthy at {s.schema_registry_url}: {len(ids)} schemas in "
            f"{subjects} subjects, {s.schema_registry_compatibility}"
        )

    async def _wait_for_services(self) -> None:
        async with httpx.AsyncClient(timeout=2.0) as http:
            for name in [*self._service_instances(), "api"]:
                await self._watching(name, self._healthy(http, name))
                self._say(f"{name:<12} healthy at {self._address(name)}")

    async def _healthy(self, http: httpx.AsyncClient, name: str) -> None:
        url = f"{self._address(name)}/healthz"
        deadline = time.monotonic() + self._settings.startup_timeout_seconds
        while time.monotonic() < deadline:
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.3)
        raise StackError(f"{name} did not answer {url} in time")

    async def _watching(self, name: str, check: Awaitable[_T]) -> _T:
        """Await ``check``, failing at once with the log's tail if ``name``'s process dies."""
        task = asyncio.ensure_future(check)
        record = self._table.get(name)
        while not task.done():
            if record is not None and not record.is_alive():
                task.cancel()
                raise StackError(self._died(name))
            await asyncio.wait({task}, timeout=0.5)
        error = task.exception()
        if error is not None:
            tail = f"\n{self._log_tail(name)}" if record is not None else ""
            raise StackError(f"{error}{tail}") from None
        return task.result()

    def _died(self, name: str) -> str:
        return f"{name} exited during start-up; the end of its log:\n{self._log_tail(name)}"

    def _log_tail(self, name: str, lines: int = 15) -> str:
        return log_tail(self._log_path(name), lines) + f"\n  (full log: saga logs {name})"

    def stop_monitoring(self) -> bool:
        """Stop this stack's Prometheus alone (by its process id); whether it was running."""
        record = self._table.get("prometheus")
        stopped = bool(record is not None and stop_processes([record]))
        if stopped and record is not None:
            self._say(f"{'prometheus':<12} stopped (pid {record.pid})")
        self._table.remove("prometheus")
        return stopped

    # -- down and ps -------------------------------------------------------------------------

    def down(self) -> list[str]:
        """Stop the recorded processes: the API, then every copy of the services together
        (each stops gracefully, see :mod:`runtime`), then the engines; return the
        names of what was stopped. The scale is kept for the next :meth:`up`."""
        recorded = set(self._table.names())
        services = sorted(recorded - {"api", *ENGINES}, key=self._order)
        # Temporal, its Web UI and the registry before the Kafka nodes (together) before
        # PostgreSQL, which Temporal and the cluster topology's registry use.
        engines = [["temporal-ui", "temporal", "registry"], [*KAFKA_NODES, "kafka"], ["postgres"]]
        groups = [["prometheus", "api"], services, *engines]
        stopped = []
        for group in groups:
            records = [record for record in map(self._table.get, group) if record is not None]
            if group == ["postgres"]:
                halted = [record for record in records if stop_postgres(record)]
            else:
                halted = stop_processes(records)
            for record in halted:
                stopped.append(record.name)
                self._say(f"{record.name:<12} stopped (pid {record.pid})")
            for name in group:
                self._table.remove(name)
        return stopped

    def status(self) -> list[ComponentStatus]:
        """Each process's state, address, process id and version: every component, with each
        copy of a service after it (and any copy still recorded beyond the scale)."""
        names = set(self.components()) | set(self._service_instances())
        names |= {name for name in self._table.names() if split_instance(name)[0] in SERVICES}
        names |= {name for name in self._table.names() if name in ENGINES}
        return [
            self._status(name, self._table.get(name)) for name in sorted(names, key=self._order)
        ]

    def _postgres_version(self) -> str | None:
        try:
            major = (self._postgres().data_dir / "PG_VERSION").read_text().strip()
        except (OSError, MissingToolError):
            return None
        return f"PostgreSQL {major}"

    @staticmethod
    def _order(name: str) -> tuple[int, int, str]:
        """Where ``name`` comes in listings: components in their order, copies by number."""
        component, copy = split_instance(name)
        rank = COMPONENTS.index(component) if component in COMPONENTS else len(COMPONENTS)
        return rank, copy, name

    def _status(self, name: str, record: ProcessRecord | None) -> ComponentStatus:
        alive = record is not None and record.is_alive()
        host, port = self._listen_port(name)
        answering = port_in_use(host, port)
        if alive:
            state = "running" if answering else "starting"
        elif not self._embedded(name):
            state = "external" if answering else "unreachable"
        else:
            state = "stopped"
        version = None
        if name in ("kafka", *KAFKA_NODES) and (alive or answering):
            version = broker_version(self._log_path(name))
        elif name == "postgres":
            version = self._postgres_version()
        elif name == "temporal" and self._cluster:
            version = f"Temporal server {self._settings.temporal_server_version}"
        elif name == "temporal-ui":
            version = f"Temporal UI {self._settings.temporal_ui_version}"
        elif name == "registry" and self._embedded(name):
            version = f"Apicurio Registry {self._settings.schema_registry_version}"
        elif name == "prometheus" and alive:
            version = prometheus_version(self._settings.prometheus)
        elif name == "temporal" and self._embedded(name):
            version = temporal_version(find_temporal_cli(self._settings.temporal_cli))
        return ComponentStatus(
            name=name,
            state=state,
            address=self._address(name),
            pid=record.pid if alive and record is not None else None,
            version=version,
            log=str(self._log_path(name)) if record is not None else None,
            metrics=self.metrics_urls(name),
        )
