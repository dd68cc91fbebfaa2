"""Engines and stacks of a test's own, on ports that one reservation hands out.

The session's shared engines and stack are fixtures in ``tests/system/conftest.py``; these are
the pieces those fixtures and the system tests that start their own share. Every port of one
stack comes from one ``reserve_ports`` block, so no two of them can be the same.
"""

import asyncio
import contextlib
import json
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import pytest

from contracts.topics import all_topics
from infra.config.api_tokens import Scope
from infra.config.settings import Settings
from infra.engines.kafka_broker import KafkaBroker, apply_topic_catalog
from infra.engines.processes import (
    PortReservation,
    ProcessRecord,
    ProcessTable,
    reserve_ports,
    spawn,
    stop_process,
)
from infra.engines.schema_registry import SchemaRegistryServer, ensure_apicurio, find_java
from infra.engines.stack import Stack
from runtime import wait_for_kafka
from tests.support.postgres import postgres_run_dir

START_TIMEOUT = 90.0

# The carrier of the stack waits longer than the short dispatch deadline of the deadline
# paths, and long enough for the customer-cancel paths to cancel before it dispatches.
CARRIER_DELAY = 4.0
DEFAULT_SKUS = ("SKU-1001", "SKU-1002", "SKU-1003")
E2E_SKUS = ("E2E-A", "E2E-B")

SDK_METRICS_OFFSET: int = Settings.model_fields["sdk_metrics_port_offset"].default
INSTANCE_STEP: int = Settings.model_fields["instance_port_step"].default
"""Copy N of a process listens this many ports further per copy."""
"""A process's Temporal SDK metrics listen this far above its own port."""
TEMPORAL_NEIGHBOURS = (10, 11)
"""An embedded Temporal's HTTP API and metrics listen this far above its frontend port."""
FULL_TEMPORAL_NEIGHBOURS = (1, 2, 3, 4, 5, 6, 7, 10, 11)
"""Temporal's full server (cluster topology) listens this far above its frontend port too:
its membership, history, matching and worker services."""
KAFKA_NODE_STEP: int = Settings.model_fields["kafka_node_port_step"].default
CLUSTER_COPIES = 2
"""Copies of every service in the cluster topology."""
PROCESS_PORTS = ("api_port", "payment_port", "inventory_port", "shipping_port", "orchestrator_port")


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def process_ports(ports: PortReservation, copies: int = 1) -> dict[str, Any]:
    """The settings of the ports of the API and the four processes, each with its Temporal SDK
    metrics port (its port plus the default ``sdk_metrics_port_offset``) free too, and those
    of ``copies`` copies of each (``instance_port_step`` apart)."""
    neighbours = [SDK_METRICS_OFFSET]
    for copy in range(1, copies):
        neighbours += [copy * INSTANCE_STEP, copy * INSTANCE_STEP + SDK_METRICS_OFFSET]
    return {name: ports.port(*neighbours) for name in PROCESS_PORTS}


def stack_ports(ports: PortReservation) -> dict[str, Any]:
    """The settings of every address of a stack of its own, Kafka and Temporal embedded."""
    return {
        "kafka_bootstrap_servers": f"127.0.0.1:{ports.port()}",
        "kafka_controller_port": ports.port(),
        "temporal_address": f"127.0.0.1:{ports.port(*TEMPORAL_NEIGHBOURS)}",
        "temporal_ui_port": ports.port(),
        "schema_registry_url": registry_url(ports),
        **process_ports(ports),
    }


def cluster_stack_ports(ports: PortReservation) -> dict[str, Any]:
    """The settings of every address of a cluster-topology stack of its own: PostgreSQL, the
    three Kafka nodes (each broker and controller port ``kafka_node_port_step`` apart, every
    one free), Temporal's full server with its neighbours, and two copies of each process."""
    nodes = [KAFKA_NODE_STEP * n for n in range(1, 3)]
    return {
        "postgres_port": ports.port(),
        "kafka_bootstrap_servers": f"127.0.0.1:{ports.port(*nodes)}",
        "kafka_controller_port": ports.port(*nodes),
        "kafka_node_port_step": KAFKA_NODE_STEP,
        "temporal_address": f"127.0.0.1:{ports.port(*FULL_TEMPORAL_NEIGHBOURS)}",
        "temporal_ui_port": ports.port(),
        "schema_registry_url": registry_url(ports),
        **process_ports(ports, CLUSTER_COPIES),
    }


def registry_url(ports: PortReservation) -> str:
    """The URL of a registry on a free port whose management port, the one above, is free
    too."""
    return f"http://127.0.0.1:{ports.port(1)}"


def own_registry(directory: Path) -> SchemaRegistryServer:
    """Apicurio Registry of its own on free ports, its schemas in an H2 file under
    ``directory``, not started."""
    settings = Settings()
    with reserve_ports() as ports:
        port = ports.port(1)
    return SchemaRegistryServer(
        app=ensure_apicurio(
            settings.schema_registry_cache_dir,
            settings.schema_registry_version,
            maven=settings.maven,
        ),
        run_dir=directory,
        port=port,
        java=find_java(settings.schema_registry_java),
    )


def start_registry(registry: SchemaRegistryServer) -> ProcessRecord:
    """Start ``registry`` and wait until it is ready; fail the calling test, with its log, if
    it does not come up."""
    registry.write_config()
    _, record = spawn("registry", registry.command(), registry.log_path, cwd=registry.home)
    try:
        registry.wait_until_ready(record, time.monotonic() + START_TIMEOUT)
    except RuntimeError as exc:
        stop_process(record)
        pytest.fail(f"the schema registry did not start: {exc}", pytrace=False)
    return record


@contextlib.contextmanager
def running_registry(directory: Path) -> Iterator[SchemaRegistryServer]:
    """A real Apicurio Registry on free ports, stopped (by its process id) at the end."""
    registry = own_registry(directory)
    record = start_registry(registry)
    try:
        yield registry
    finally:
        stop_process(record)


def own_broker(libs: Path, data_dir: Path) -> KafkaBroker:
    """A broker of its own on two free ports, not started."""
    with reserve_ports() as ports:
        port, controller_port = ports.ports(2)
    return KafkaBroker(libs=libs, data_dir=data_dir, port=port, controller_port=controller_port)


def start_broker(broker: KafkaBroker) -> ProcessRecord:
    """Start ``broker`` (formatting its storage the first time) and apply the topic catalog.

    Fails the calling test, with the broker's log, if the broker does not come up.
    """
    broker.format_storage()
    log = broker.data_dir / "broker.log"
    _, record = spawn("kafka", broker.command(), log)
    try:
        asyncio.run(wait_for_kafka(broker.bootstrap_servers, wait_seconds=START_TIMEOUT))
        asyncio.run(apply_topic_catalog(broker.bootstrap_servers, all_topics()))
    except Exception as exc:  # noqa: BLE001 - any failure to start is reported with the log
        stop_process(record)
        pytest.fail(f"the Kafka broker did not start: {exc}\n{log_tail(log)}", pytrace=False)
    return record


@contextlib.contextmanager
def running_broker(libs: Path, data_dir: Path) -> Iterator[KafkaBroker]:
    """A real Apache Kafka broker on free ports, with the topic catalog, stopped at the end."""
    broker = own_broker(libs, data_dir)
    record = start_broker(broker)
    try:
        yield broker
    finally:
        stop_process(record)


def seed_file(directory: Path, stock: dict[str, int]) -> Path:
    """An inventory seed file in ``directory``: ``stock`` by SKU."""
    seed = directory / "seed.json"
    seed.write_text(json.dumps(stock))
    return seed


def stack_settings(
    run_dir: Path,
    stock: dict[str, int],
    *,
    kafka: str,
    temporal: str,
    registry: str,
    **settings: Any,
) -> Settings:
    """Settings of a stack on engines that run already (Kafka at ``kafka``, Temporal at
    ``temporal``, the schema registry at ``registry``), with ``stock`` in its inventory, every
    process logging JSON lines."""
    return Settings(
        **{
            "run_dir": run_dir,
            "inventory_seed_file": seed_file(run_dir, stock),
            "kafka_embedded": False,
            "kafka_bootstrap_servers": kafka,
            "temporal_embedded": False,
            "temporal_address": temporal,
            "schema_registry_embedded": False,
            "schema_registry_url": registry,
            "log_format": "json",
            "log_level": "INFO",
            **settings,
        }
    )


@contextlib.contextmanager
def stack_up(settings: Settings) -> Iterator[Stack]:
    """``saga up`` for ``settings``, and ``saga down`` at the end, whatever happened."""
    stack = Stack(settings, say=lambda _: None)
    try:
        stack.up()
        yield stack
    finally:
        stack.down()


@contextlib.contextmanager
def own_stack(
    kafka_libs: Path, directory: Path, stock: dict[str, int], **overrides: Any
) -> Iterator[Settings]:
    """A whole stack of a test's own, Kafka and Temporal embedded (so that a test may kill or
    secure them), on free loopback ports, with ``stock`` in the inventory; down at the end."""
    with reserve_ports() as ports:
        addresses = stack_ports(ports)
    settings = Settings(
        **{
            "run_dir": directory / "run",
            "inventory_seed_file": seed_file(directory, stock),
            "kafka_embedded": True,
            "kafka_cache_dir": kafka_libs.parent.parent,
            "temporal_embedded": True,
            **addresses,
            "startup_timeout_seconds": 120,
            **overrides,
        }
    )
    with stack_up(settings):
        yield settings


@dataclass(frozen=True)
class ClusterStack:
    """A cluster-topology stack a test started with `saga up`, and what that printed."""

    settings: Settings
    env: dict[str, str]
    """The environment of `saga` pointed at it."""
    up_output: str


@contextlib.contextmanager
def cluster_stack(
    kafka_libs: Path, stock: dict[str, int], **overrides: Any
) -> Iterator[ClusterStack]:
    """`saga up --topology cluster` for a stack of its own (PostgreSQL, three Kafka nodes,
    Temporal's full server and Web UI, two copies of every service), on free loopback ports,
    with ``stock`` in the inventory; `saga down` at the end, which must leave no process of
    it running. Its run directory is one the ``postgres`` user can enter."""
    from tests.support.cli import run_saga, without_settings  # cli imports this module

    folder = postgres_run_dir()
    with reserve_ports() as ports:
        addresses = cluster_stack_ports(ports)
    settings = Settings(
        **{
            "run_dir": folder / "run",
            "topology": "cluster",
            "inventory_seed_file": seed_file(folder, stock),
            "kafka_cache_dir": kafka_libs.parent.parent,
            **addresses,
            "startup_timeout_seconds": 180,
            **overrides,
        }
    )
    env = {**without_settings(), **settings.as_env()}
    try:
        up = run_saga(env, "up", "--topology", "cluster", timeout=900)
        if up.returncode != 0:
            pytest.fail(
                f"saga up --topology cluster failed:\n{up.stdout}{up.stderr}", pytrace=False
            )
        yield ClusterStack(settings, env, up.stdout)
    finally:
        down = run_saga(env, "down", timeout=300)
        running = ProcessTable(settings.run_dir).names()
        shutil.rmtree(folder, ignore_errors=True)
    assert down.returncode == 0, down.stdout + down.stderr
    assert running == [], f"saga down left {running} recorded"


def scoped_token_name(scope: Scope) -> str:
    """The name of the token of the ``scoped_tokens`` fixture that has ``scope`` alone."""
    return "only-" + scope.value.replace(":", "-")


_Engine = TypeVar("_Engine")


def kafka_fixture(
    start: Callable[[Path, Path], AbstractContextManager[_Engine]],
    folder: str,
    *,
    scope: Literal["session", "module"] = "module",
) -> Callable[[Path, pytest.TempPathFactory], Iterator[_Engine]]:
    """A fixture that runs ``start(kafka_libs, <a fresh folder named folder>)`` for its scope:
    a broker, or a cluster, of the session's or of one module's own."""

    def engine(kafka_libs: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Engine]:
        with start(kafka_libs, tmp_path_factory.mktemp(folder)) as running:
            yield running

    engine.__doc__ = f"Kafka ({start.__name__}) in {folder}/, for the {scope}."
    return pytest.fixture(scope=scope)(engine)
