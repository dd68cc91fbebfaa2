"""Temporal's full server on PostgreSQL, for the cluster topology.

Not the CLI's dev server: the server production runs, built once per version by
:func:`infra.engines.temporal_build.ensure_temporal_server`. :class:`TemporalFullServer` runs it
on a :class:`~infra.engines.postgres.PostgresServer`, with everything under the run directory:

- one role ``temporal`` owning two databases, ``temporal`` and ``temporal_visibility``, their
  schemas set up on first start and migrated on every start (temporal-sql-tool);
- ``<run_dir>/temporal/config.yaml`` (mode 0600: it holds the role's password), adapted from
  the module's ``config/development-postgres12.yaml``: every listener on 127.0.0.1, on
  reserved ports (:class:`TemporalPorts`), Prometheus off port 8000 (the API's), archival off;
- ``<run_dir>/temporal/tls/`` with mTLS on: a CA made for the run, the frontend's certificate,
  and the client certificate that the server's own system worker and this project's
  processes present (the frontend requires one);
- ``<run_dir>/logs/temporal.log``: the server's log.

Once the frontend answers, the namespace and the saga's search attributes are registered
through the Python SDK's services (no ``temporal`` CLI).
"""

import asyncio
import os
import subprocess
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit

import psycopg
import yaml
from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest, RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from contracts.search_attributes import SEARCH_ATTRIBUTE_KEYS
from infra.config.temporal import TemporalConnection
from infra.engines.certificates import Leaf, expiring, make_certificates
from infra.engines.postgres import PostgresServer
from infra.engines.private_files import write_private
from infra.engines.processes import PortReservation, ProcessRecord, log_tail, spawn, stop_process
from infra.engines.temporal_build import TemporalServerBuild

__all__ = [
    "FrontendTls",
    "TemporalDatabase",
    "TemporalFullServer",
    "TemporalPorts",
    "ensure_frontend_tls",
    "provision_temporal_database",
    "stop_temporal_server",
]

_PLUGIN = "postgres12"
_SCHEMAS = {"temporal": "postgresql/v12/temporal", "visibility": "postgresql/v12/visibility"}
"""temporal-sql-tool's embedded schema of each store, by ``--schema-name``."""


# --- what one server needs ----------------------------------------------------------------------


@dataclass(frozen=True)
class TemporalPorts:
    """Every port the server listens on (all on 127.0.0.1)."""

    frontend: int
    """gRPC: what clients connect to."""
    frontend_http: int
    frontend_membership: int
    history: int
    history_membership: int
    matching: int
    matching_membership: int
    worker: int
    worker_membership: int
    metrics: int
    """Prometheus ``/metrics`` of all four services."""

    @classmethod
    def reserve(cls, reservation: PortReservation) -> "TemporalPorts":
        """Ten distinct ports from ``reservation`` (hold them until the server starts)."""
        return cls(*reservation.ports(10))


@dataclass(frozen=True)
class TemporalDatabase:
    """Where the server keeps its state: two databases of one role on a PostgreSQL server."""

    host: str
    port: int
    user: str
    password: str = field(repr=False)
    database: str = "temporal"
    visibility_database: str = "temporal_visibility"

    def url(self, database: str) -> str:
        """A libpq URL of ``database`` as :attr:`user`, password included (checks from Python)."""
        secret = quote(self.password, safe="")
        return f"postgresql://{quote(self.user)}:{secret}@{self.host}:{self.port}/{database}"


def provision_temporal_database(
    postgres: PostgresServer,
    role: str = "temporal",
    database: str = "temporal",
    visibility_database: str = "temporal_visibility",
) -> TemporalDatabase:
    """The role and its two databases on ``postgres`` (see
    :meth:`~infra.engines.postgres.PostgresServer.provision_role`): made once, kept after."""
    urls = postgres.provision_role(role, [database, visibility_database])
    parts = urlsplit(urls[database])
    return TemporalDatabase(
        host=postgres.host,
        port=postgres.port,
        user=role,
        password=unquote(parts.password or ""),
        database=database,
        visibility_database=visibility_database,
    )


@dataclass(frozen=True)
class FrontendTls:
    """The PEM files of mTLS on the frontend, made for the run."""

    ca: Path
    """The run's CA: clients trust it for the server, the server for clients."""
    server_cert: Path
    server_key: Path
    client_cert: Path
    """What the server's system worker and this project's processes present."""
    client_key: Path

    def client_tls(self, server_name: str | None = None) -> TLSConfig:
        """The Python SDK's TLS configuration of a client presenting the run's certificate."""
        return TLSConfig(
            server_root_ca_cert=self.ca.read_bytes(),
            domain=server_name,
            client_cert=self.client_cert.read_bytes(),
            client_private_key=self.client_key.read_bytes(),
        )


def ensure_frontend_tls(
    folder: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> FrontendTls:
    """The CA, server and client certificates in ``folder``, made on first use (valid a year;
    the server's for ``hosts``); private keys mode 0600."""
    files = FrontendTls(
        ca=folder / "ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server-key.pem",
        client_cert=folder / "client.pem",
        client_key=folder / "client-key.pem",
    )
    paths = (files.ca, files.server_cert, files.server_key, files.client_cert, files.client_key)
    if all(path.exists() for path in paths) and not expiring(files.ca):
        return files
    folder.mkdir(parents=True, exist_ok=True)
    ca, (server, client) = make_certificates(
        "saga-orchestrator temporal CA",
        [Leaf("saga-orchestrator temporal", hosts), Leaf("saga-orchestrator client")],
    )
    for key_path, cert_path, issued in (
        (files.server_key, files.server_cert, server),
        (files.client_key, files.client_cert, client),
    ):
        write_private(key_path, issued.key_pem.decode())
        cert_path.write_bytes(issued.cert_pem)
    files.ca.write_bytes(ca)
    return files


# --- the server -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TemporalFullServer:
    """Temporal's full server on loopback, its state in PostgreSQL, its files under ``run_dir``."""

    build: TemporalServerBuild
    run_dir: Path
    ports: TemporalPorts
    database: TemporalDatabase
    namespace: str = "default"
    tls: FrontendTls | None = None
    """mTLS on the frontend (clients must present a certificate the run's CA signed)."""
    retention: timedelta = timedelta(days=1)
    """How long the namespace keeps a closed workflow's history."""
    log_level: str = "warn"
    host: str = "127.0.0.1"

    @property
    def address(self) -> str:
        """The frontend's gRPC address, which clients connect to."""
        return f"{self.host}:{self.ports.frontend}"

    @property
    def home(self) -> Path:
        """The server's own files: its configuration and its certificates."""
        return self.run_dir / "temporal"

    @property
    def config_path(self) -> Path:
        """The configuration the server starts with (mode 0600)."""
        return self.home / "config.yaml"

    @property
    def dynamic_config_path(self) -> Path:
        """Its dynamic configuration (read again every 10 s)."""
        return self.home / "dynamicconfig.yaml"

    @property
    def log_path(self) -> Path:
        """The server's output."""
        return self.run_dir / "logs" / "temporal.log"

    def connection(self) -> TemporalConnection:
        """How this project's clients connect: with the run's client certificate under mTLS."""
        if self.tls is None:
            return TemporalConnection(self.address)
        return TemporalConnection(self.address, self.tls.client_tls())

    def client_settings(self) -> dict[str, str]:
        """The ``SAGA_*`` variables that point this project's processes at the server."""
        env = {"SAGA_TEMPORAL_ADDRESS": self.address, "SAGA_TEMPORAL_NAMESPACE": self.namespace}
        if self.tls is not None:
            env |= {
                "SAGA_TEMPORAL_TLS_CA_FILE": str(self.tls.ca),
                "SAGA_TEMPORAL_TLS_CERT_FILE": str(self.tls.client_cert),
                "SAGA_TEMPORAL_TLS_KEY_FILE": str(self.tls.client_key),
            }
        return env

    def config(self) -> dict[str, Any]:
        """The server's configuration: ``config/development-postgres12.yaml`` of the module with
        its listeners on ``host`` at :attr:`ports`, this run's database, archival off, and
        mTLS on the frontend when :attr:`tls` is set."""
        db = self.database

        def store(database: str, connections: int) -> dict[str, Any]:
            return {
                "sql": {
                    "pluginName": _PLUGIN,
                    "databaseName": database,
                    "connectAddr": f"{db.host}:{db.port}",
                    "connectProtocol": "tcp",
                    "user": db.user,
                    "password": db.password,
                    "maxConns": connections,
                    "maxIdleConns": connections,
                    "maxConnLifetime": "1h",
                }
            }

        def service(grpc: int, membership: int, http: int | None = None) -> dict[str, Any]:
            rpc: dict[str, Any] = {
                "grpcPort": grpc,
                "membershipPort": membership,
                "bindOnIP": self.host,
            }
            if http is not None:
                rpc["httpPort"] = http
            return {"rpc": rpc}

        p = self.ports
        global_: dict[str, Any] = {
            "membership": {"maxJoinDuration": "30s", "broadcastAddress": self.host},
            "metrics": {
                "prometheus": {
                    "framework": "tally",
                    "timerType": "histogram",
                    "listenAddress": f"{self.host}:{p.metrics}",
                }
            },
        }
        if self.tls is not None:
            trust = {"serverName": "localhost", "rootCaFiles": [str(self.tls.ca)]}
            global_["tls"] = {
                "frontend": {
                    "server": {
                        "certFile": str(self.tls.server_cert),
                        "keyFile": str(self.tls.server_key),
                        "requireClientAuth": True,
                        "clientCaFiles": [str(self.tls.ca)],
                    },
                    "client": trust,
                },
                # The server's own system worker is a client of the frontend like any other.
                "systemWorker": {
                    "certFile": str(self.tls.client_cert),
                    "keyFile": str(self.tls.client_key),
                    "client": trust,
                },
            }
        return {
            "log": {"stdout": True, "level": self.log_level},
            "persistence": {
                "defaultStore": "postgres-default",
                "visibilityStore": "postgres-visibility",
                "numHistoryShards": 4,
                "datastores": {
                    "postgres-default": store(db.database, 20),
                    "postgres-visibility": store(db.visibility_database, 2),
                },
            },
            "global": global_,
            "services": {
                "frontend": service(p.frontend, p.frontend_membership, p.frontend_http),
                "history": service(p.history, p.history_membership),
                "matching": service(p.matching, p.matching_membership),
                "worker": service(p.worker, p.worker_membership),
            },
            "clusterMetadata": {
                "enableGlobalNamespace": False,
                "failoverVersionIncrement": 10,
                "masterClusterName": "active",
                "currentClusterName": "active",
                "clusterInformation": {
                    "active": {
                        "enabled": True,
                        "initialFailoverVersion": 1,
                        "rpcName": "frontend",
                        "rpcAddress": self.address,
                    }
                },
            },
            "dcRedirectionPolicy": {"policy": "noop"},
            "archival": {
                "history": {"state": "disabled"},
                "visibility": {"state": "disabled"},
            },
            "namespaceDefaults": {
                "archival": {
                    "history": {"state": "disabled"},
                    "visibility": {"state": "disabled"},
                }
            },
            "dynamicConfigClient": {
                "filepath": str(self.dynamic_config_path),
                "pollInterval": "10s",
            },
        }

    def dynamic_config(self) -> dict[str, Any]:
        """The dynamic configuration: the module's ``development-sql.yaml`` in what it sets,
        plus search attributes that a query sees as soon as they are added, and room for
        the saga map's visibility counts (Temporal's default is 10 a second per namespace
        and frontend; one reading of a map is up to about 30)."""
        nexus = f"http://{self.host}:{self.ports.frontend_http}"
        return {
            "limit.maxIDLength": [{"value": 255, "constraints": {}}],
            "frontend.namespaceRPS.visibility": [{"value": 100}],
            "system.forceSearchAttributesCacheRefreshOnRead": [{"value": True}],
            "frontend.workerVersioningDataAPIs": [{"value": True}],
            "frontend.workerVersioningWorkflowAPIs": [{"value": True}],
            "frontend.workerVersioningRuleAPIs": [{"value": True}],
            "system.enableDeploymentVersions": [{"value": True}],
            "system.enableDeployments": [{"value": True}],
            "component.nexusoperations.callback.endpoint.template": [
                {"value": nexus + "/namespaces/{{.NamespaceName}}/nexus/callback"}
            ],
        }

    def write_config(self) -> Path:
        """Write :meth:`config` (mode 0600: it holds the database password) and
        :meth:`dynamic_config` under :attr:`home`; return the configuration's path."""
        self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        header = "# Written by saga-orchestrator for this run (infra/engines/temporal_full.py).\n"
        write_private(self.config_path, header + yaml.safe_dump(self.config(), sort_keys=False))
        self.dynamic_config_path.write_text(
            header + yaml.safe_dump(self.dynamic_config(), sort_keys=False)
        )
        return self.config_path

    def command(self) -> list[str]:
        """The command line that runs the server."""
        return [
            str(self.build.server),
            "--config-file",
            str(self.config_path),
            "--allow-no-auth",
            "start",
        ]

    def setup_schemas(self) -> None:
        """Both stores' schemas: versioning tables on first use, then every migration the
        SQL tool carries (a store already at its newest version is left as it is).

        Raises:
            RuntimeError: the SQL tool failed (its output is in the message).
        """
        db = self.database
        for store, database in (
            ("temporal", db.database),
            ("visibility", db.visibility_database),
        ):
            if not self._has_versioning(database):
                self._sql(database, "setup-schema", "-v", "0.0")
            self._sql(database, "update-schema", "--schema-name", _SCHEMAS[store])

    def _has_versioning(self, database: str) -> bool:
        with psycopg.connect(self.database.url(database), connect_timeout=10) as conn:
            found = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
        return bool(found and found[0])

    def _sql(self, database: str, *arguments: str) -> None:
        db = self.database
        # The password goes in the environment, not on a command line that `ps` shows.
        env = {
            **os.environ,
            "SQL_PLUGIN": _PLUGIN,
            "SQL_HOST": db.host,
            "SQL_PORT": str(db.port),
            "SQL_USER": db.user,
            "SQL_PASSWORD": db.password,
            "SQL_DATABASE": database,
        }
        done = subprocess.run(
            [str(self.build.sql_tool), *arguments],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"temporal-sql-tool {' '.join(arguments)} on {database} failed "
                f"(exit {done.returncode}):\n{done.stdout}{done.stderr}"
            )

    def prepare(self) -> None:
        """What must be done before the server starts: both stores' schemas, set up or
        migrated, and the configuration written."""
        self.setup_schemas()
        self.write_config()

    def start(self, *, timeout: float = 60.0) -> ProcessRecord:
        """Set up the schemas, write the configuration, start the server, wait until its
        frontend answers, and register the namespace and the saga's search attributes.

        A blocking call; called from a running event loop, it waits on a thread of its own.

        Returns:
            The server's process record (stop it with :func:`stop_temporal_server`).

        Raises:
            RuntimeError: the schemas could not be set up, or the server ended or did not
                answer within ``timeout`` seconds (the end of its log is in the message); it
                is stopped.
        """
        self.prepare()
        _, record = spawn("temporal", self.command(), self.log_path, cwd=self.home)
        try:
            _run_to_end(self.until_ready(record, time.monotonic() + timeout))
        except BaseException:
            stop_temporal_server(record)
            raise
        return record

    async def until_ready(self, record: ProcessRecord, deadline: float) -> None:
        """Wait until the server of ``record`` answers, then register the namespace and the
        saga's search attributes, by ``deadline`` (``time.monotonic()``).

        Raises:
            RuntimeError: the server ended, or did not get there in time.
        """
        client = await self._wait_until_ready(record, deadline)
        await self.register_namespace(client, deadline=deadline)

    async def _wait_until_ready(self, record: ProcessRecord, deadline: float) -> Client:
        connection = self.connection()
        last = "no answer"
        while True:
            try:
                client = await Client.connect(
                    self.address, namespace=self.namespace, tls=connection.tls or False
                )
                await client.workflow_service.get_system_info(
                    GetSystemInfoRequest(), timeout=timedelta(seconds=5)
                )
            except (RuntimeError, RPCError, OSError) as error:
                last = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
            else:
                return client
            if not record.is_alive():
                raise RuntimeError(
                    f"Temporal's server ended during start:\n{log_tail(self.log_path)}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Temporal's server did not answer on {self.address} in time ({last}):\n"
                    f"{log_tail(self.log_path)}"
                )
            await asyncio.sleep(0.2)

    async def register_namespace(self, client: Client, *, deadline: float) -> None:
        """Register :attr:`namespace` (if it is not yet) and add the saga's search attributes
        it lacks, retrying while the server's caches catch up until ``deadline``
        (``time.monotonic()``); a server whose database is away for a moment (PostgreSQL
        restarting under a running server) answers UNAVAILABLE meanwhile."""
        while True:
            try:
                await client.workflow_service.register_namespace(
                    RegisterNamespaceRequest(
                        namespace=self.namespace,
                        description="saga-orchestrator",
                        workflow_execution_retention_period=Duration(
                            seconds=int(self.retention.total_seconds())
                        ),
                    )
                )
            except RPCError as error:
                if error.status == RPCStatusCode.ALREADY_EXISTS:
                    break
                if error.status != RPCStatusCode.UNAVAILABLE or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
            else:
                break
        wanted = {
            key.name: IndexedValueType.ValueType(key.indexed_value_type.value)
            for key in SEARCH_ATTRIBUTE_KEYS
        }
        while True:
            try:
                listed = await client.operator_service.list_search_attributes(
                    ListSearchAttributesRequest(namespace=self.namespace)
                )
                missing = {
                    name: kind
                    for name, kind in wanted.items()
                    if name not in listed.custom_attributes
                }
                if missing:
                    await client.operator_service.add_search_attributes(
                        AddSearchAttributesRequest(
                            namespace=self.namespace, search_attributes=missing
                        )
                    )
                    continue
                # A new namespace reaches every part of the server within seconds: a query
                # by a saga's attribute answers once it has.
                await client.count_workflows(f"{SEARCH_ATTRIBUTE_KEYS[0].name} = 'none'")
            except RPCError as error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"Temporal's server did not take the search attributes of namespace "
                        f"{self.namespace!r} in time ({error.status.name}: {error.message})"
                    ) from None
                await asyncio.sleep(0.5)
            else:
                return


def _run_to_end(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run ``coroutine`` to its end in a loop of its own, on another thread if this one
    already runs a loop (``asyncio.run`` refuses to nest)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        asyncio.run(coroutine)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="temporal-start") as pool:
        pool.submit(asyncio.run, coroutine).result()


def stop_temporal_server(record: ProcessRecord, *, timeout: float = 20.0) -> bool:
    """Stop the recorded server: SIGTERM (it drains and stops in about 3 s), then SIGKILL after
    ``timeout`` seconds.

    Returns:
        True if the server was running and has been stopped, False if it was not running.
    """
    return stop_process(record, timeout=timeout)
