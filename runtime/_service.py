"""What every service process shares.

A service process is a Temporal worker on the service's task queue, the service's own SQLite
database with its outbox, the relay that publishes the outbox to Kafka, any background tasks
of the service (the carrier simulator) and ``/healthz`` + ``/metrics``. The service's
composition root only says which activities and background tasks it has (:class:`ServiceParts`).

Several copies of a service may run (``saga up --scale``, ``SAGA_INSTANCE``): they share the
task queue, the database and the consumer groups; the outbox lease lets one relay of them
publish at a time.

SIGTERM (or SIGINT) stops a process gracefully, in this order: the health server stops
answering; the Temporal worker stops polling and lets running activities finish for up to
:data:`ACTIVITY_GRACE` (then they are cancelled, and Temporal retries them elsewhere); the
background tasks are cancelled (consumers commit what they handled); the relay publishes
what is still pending, for at most its flush time-out, and releases the lease.
"""

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import Enum
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app
from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.worker import Worker

from contracts.envelope import EventData
from contracts.registry import model_carrying
from infra.config.kafka import kafka_connection
from infra.config.logs import configure_logging
from infra.config.payload_codec import data_converter
from infra.config.sdk_metrics import sdk_metrics_runtime
from infra.config.settings import ConfigurationError, Settings, instance_name, load_settings
from infra.config.temporal import temporal_connection
from infra.config.tracing import export_traces, temporal_interceptors, traced_workflow_runner
from runtime._activity_metrics import ActivityAttempts, ActivityMetrics
from runtime._clients import KafkaUnavailableError, new_consumer, new_producer, wait_for_kafka
from runtime._database import Database
from runtime._metrics import EventBusMetrics, SchemaRegistryMetrics
from runtime._outbox import Outbox, OutboxClaims, OutboxRelay
from runtime._schema_registry import SchemaRegistry, SchemaRegistryError
from runtime._stores import DatabaseUnavailableError, open_store
from runtime._temporal import TemporalUnavailableError, wait_for_temporal

__all__ = [
    "ACTIVITY_GRACE",
    "DomainEvents",
    "ServiceContext",
    "ServiceFactory",
    "ServiceParts",
    "causation_id",
    "health_app",
    "ping_activity",
    "refusal",
    "relaying",
    "run_service",
    "serve",
]

log = logging.getLogger(__name__)

ACTIVITY_GRACE = timedelta(seconds=10)
"""How long a stopping worker lets its running activities finish before cancelling them.

With the relay's flush (5 s at most) it stays below the 20 s after which `saga down` kills."""


@dataclass(frozen=True)
class ServiceParts:
    """What a service runs besides the runtime's own parts: activities and background tasks."""

    activities: Sequence[Callable[..., Any]]
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = ()
    """Coroutines that run as long as the process (they are cancelled on shutdown)."""
    workflows: Sequence[type] = ()
    """Workflow classes the process's Temporal worker runs (the orchestrator's)."""
    deterministic_modules: Sequence[str] = ()
    """Packages passed through the workflow sandbox, imported once per process instead of
    once per workflow run: deterministic and free of side effects at import (the workflows'
    own; import-linter's workflow contract keeps I/O out of them). The sandbox's checks of
    what workflow code calls still apply."""


@dataclass(frozen=True)
class ServiceContext:
    """What the runtime hands a service's factory: settings, database, outbox, clients."""

    settings: Settings
    db: Database
    outbox: Outbox
    temporal: Client
    metrics: EventBusMetrics
    registry: CollectorRegistry
    """The process's metrics registry, served on ``/metrics``, for the service's own metrics."""
    schemas: SchemaRegistry
    """The schema registry's client: consumers decode framed records with it."""


ServiceFactory = Callable[[ServiceContext], ServiceParts]
"""Builds a service's parts from its context."""

DatabasePath = Callable[[Path], Path]
"""Where a service keeps its database, given the run directory (its query module says)."""


def causation_id() -> str | None:
    """``<workflow id>/<activity id>`` of the running activity, or None outside of one."""
    try:
        info = activity.info()
    except RuntimeError:
        return None
    if info.workflow_id is None:
        return info.activity_id
    return f"{info.workflow_id}/{info.activity_id}"


def refusal(error_type: str, message: str) -> ApplicationError:
    """A business refusal for an activity to raise: ``error_type`` (``contracts.errors``) tells
    the saga what was refused, and trying again cannot help, so Temporal does not retry it."""
    return ApplicationError(message, type=error_type, non_retryable=True)


class _Cause(Enum):
    # A marker rather than None, which is a causation id of its own: "caused by nothing known".
    RUNNING_ACTIVITY = "running activity"


class DomainEvents:
    """The domain events of one service, added to its outbox inside the caller's transaction."""

    def __init__(self, outbox: Outbox, source: str) -> None:
        self._outbox = outbox
        self._source = source

    def emit(
        self,
        data: EventData,
        *,
        caused_by: str | _Cause | None = _Cause.RUNNING_ACTIVITY,
        event_id: UUID | None = None,
    ) -> None:
        """Add the event that carries ``data`` (``PaymentCompletedData``: ``payment.completed``).

        Args:
            data: The event's data; its ``order_id`` is the event's correlation id.
            caused_by: The causation id; by default the running activity's (:func:`causation_id`).
            event_id: The event's id, when the caller records it too; by default a new one.
        """
        if caused_by is _Cause.RUNNING_ACTIVITY:
            caused_by = causation_id()
        self._outbox.add(
            model_carrying(data)(
                event_id=uuid4() if event_id is None else event_id,
                source=self._source,
                correlation_id=data.order_id,
                causation_id=caused_by,
                data=data,
            )
        )


def ping_activity(service: str) -> Callable[[], Any]:
    """An activity named ``<service>.ping`` that answers with the service's name.

    It lets the orchestrator (and ops) check that some worker polls the service's task queue.
    """

    @activity.defn(name=f"{service}.ping")
    async def ping() -> str:
        return service

    return ping


def health_app(service: str, registry: CollectorRegistry) -> FastAPI:
    """The service's HTTP side: ``/healthz`` and ``/metrics``."""
    # No spans for probes and scrapes, even with traces on.
    app = FastAPI(
        title=f"{service} service",
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Answer once the service is connected to Temporal and Kafka."""
        return {"service": service, "status": "ok"}

    app.mount("/metrics", make_asgi_app(registry=registry))
    return app


async def serve(
    service: str,
    settings: Settings,
    *,
    task_queue: str,
    database: DatabasePath,
    migrations: Path,
    build: ServiceFactory,
    registry: CollectorRegistry,
    temporal_runtime: Runtime | None = None,
) -> None:
    """Connect to Kafka and Temporal, then run the service until SIGTERM or SIGINT.

    Opens the service's database (its PostgreSQL URL, else ``database(run_dir)``) migrated
    with ``migrations`` (the runtime's tables come first), builds the service's parts on it
    and runs, side by side, the Temporal worker polling ``task_queue``, the outbox relay
    (:func:`relaying`), the service's background tasks and the health endpoint. If a
    background task fails the process stops with its error.
    """
    timeout = settings.startup_timeout_seconds
    converter = data_converter(settings)
    kafka = kafka_connection(settings)
    await wait_for_kafka(kafka, wait_seconds=timeout)
    client = await wait_for_temporal(
        temporal_connection(settings),
        settings.temporal_namespace,
        wait_seconds=timeout,
        data_converter=converter,
        interceptors=temporal_interceptors(settings.otlp_endpoint),
        runtime=temporal_runtime,
    )
    db = open_store(settings, service, database(settings.run_dir), migrations=[migrations])
    schemas = SchemaRegistry.from_settings(settings, metrics=SchemaRegistryMetrics(registry))
    try:
        outbox = Outbox(db)
        metrics = EventBusMetrics(registry)
        parts = build(ServiceContext(settings, db, outbox, client, metrics, registry, schemas))
        config = uvicorn.Config(
            health_app(service, registry),
            host=settings.api_host,
            port=settings.service_port(service),
            log_level="warning",
            log_config=None,  # uvicorn's records go through this process's log handler
        )
        server = uvicorn.Server(config)
        # uvicorn catches SIGTERM/SIGINT while serving and raises them again when it returns;
        # this handler then lets the worker below finish its running activities, and a signal
        # that arrives before uvicorn serves stops it as soon as it starts.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: setattr(server, "should_exit", True))
        # What writes to the outbox stops first (the block below); then the relay publishes
        # what it wrote.
        async with relaying(
            service, settings, outbox, metrics=metrics, schemas=schemas
        ) as publishing:
            background = [
                asyncio.create_task(task(), name=f"{service}-{getattr(task, '__qualname__', task)}")
                for task in parts.background
            ]
            try:
                async with Worker(
                    client,
                    task_queue=task_queue,
                    activities=[ping_activity(service), *parts.activities],
                    workflows=list(parts.workflows),
                    workflow_runner=traced_workflow_runner(passthrough=parts.deterministic_modules),
                    interceptors=[
                        ActivityAttempts(
                            ActivityMetrics(registry), skip=frozenset({f"{service}.ping"})
                        )
                    ],
                    graceful_shutdown_timeout=ACTIVITY_GRACE,
                    max_cached_workflows=settings.workflow_cache_size,
                ):
                    log.info("%s service polling task queue %r", service, task_queue)
                    await _serve_until_stopped(server, [publishing, *background])
                log.info("%s service: worker stopped; stopping its background tasks", service)
            finally:
                await _cancel(background)
    finally:
        await schemas.aclose()
        db.close()
    log.info("%s service stopped", service)


@contextlib.asynccontextmanager
async def relaying(
    process: str,
    settings: Settings,
    outbox: Outbox,
    *,
    metrics: EventBusMetrics | None = None,
    schemas: SchemaRegistry | None = None,
) -> AsyncIterator[asyncio.Task[None]]:
    """Publish ``outbox`` to Kafka while the block runs: the one relay wiring of every outbox.

    The relay frames every record with its schema's id at ``schemas`` (by default a client of
    the settings' registry, closed with the block). The packaged schemas are registered
    first (:meth:`SchemaRegistry.register_catalog`); a registry that is away then delays
    nothing but the relay's first batch, which asks again.

    On PostgreSQL (unless ``SAGA_OUTBOX_RELAY=lease``) the relay claims rows beside the other
    copies' relays (:class:`~runtime._outbox.OutboxClaims`). Otherwise it publishes only
    while it holds the outbox's lease (in ``process``'s name), so
    that of the copies sharing a database one publishes at a time; a relay that takes the
    lease first marks sent what its predecessor got onto Kafka. When the block ends, the
    relay publishes what is still pending, for at most its flush time-out, then releases
    the lease: an event written just before a process stops is not left until the next start.

    Yields:
        The relay's task, which ends before the block does only if the relay failed.
    """
    kafka = kafka_connection(settings)
    own_schemas = schemas is None
    schemas = SchemaRegistry.from_settings(settings) if schemas is None else schemas
    await _register_at_start(schemas, process)
    if settings.outbox_relay != "lease" and outbox.database.dialect == "postgresql":
        # Every copy publishes: claims on a connection of the relay's own.
        claims: OutboxClaims | None = OutboxClaims(outbox.database.reopen())
        relay = OutboxRelay(
            outbox, lambda: new_producer(kafka), metrics=metrics, claims=claims, schemas=schemas
        )
    else:
        claims = None
        relay = OutboxRelay(
            outbox,
            lambda: new_producer(kafka),
            metrics=metrics,
            lease=outbox.lease(_lease_owner(process, settings), ttl=settings.outbox_lease_seconds),
            consumer_factory=lambda: new_consumer(kafka, None),
            schemas=schemas,
        )
    publishing = asyncio.create_task(relay.run(), name=f"{process}-outbox-relay")
    try:
        yield publishing
    finally:
        await _stop_relay(relay, publishing)
        if claims is not None:
            claims.close()
        if own_schemas:
            await schemas.aclose()


async def _register_at_start(schemas: SchemaRegistry, process: str) -> bool:
    """Register the packaged schemas at process start (idempotent); whether it worked.

    A failure is one log line and no more: the relay asks for each id again as it publishes,
    and its rows wait until the registry gives them.
    """
    try:
        ids = await schemas.register_catalog()
    except SchemaRegistryError as exc:
        # An incompatible schema needs a person; a registry that is away, only time.
        log.log(
            logging.WARNING if exc.retryable else logging.ERROR,
            "%s: cannot register the event schemas at %s (%s); the relay asks again",
            process,
            schemas.url,
            exc,
        )
        return False
    log.info("%s: %d event schemas registered at %s", process, len(ids), schemas.url)
    return True


def _lease_owner(service: str, settings: Settings) -> str:
    """This process as the outbox lease names it: its name, process id and a random part."""
    return f"{instance_name(service, settings.instance)}:{os.getpid()}:{uuid4().hex[:8]}"


async def _stop_relay(relay: OutboxRelay, publishing: asyncio.Task[None]) -> None:
    """Let the relay flush and release its lease; cancel it if it takes longer than it should."""
    if publishing.done():
        return  # it failed, and the process stops with its error
    relay.stop()
    try:
        await asyncio.wait_for(publishing, relay.flush_timeout + 5.0)
    except TimeoutError:
        log.warning("the outbox relay did not stop in time: cancelled")


async def _serve_until_stopped(
    server: uvicorn.Server, background: list[asyncio.Task[None]]
) -> None:
    """Serve HTTP until a signal stops the server, or until a background task ends."""
    serving = asyncio.create_task(server.serve(), name="health")
    done, _ = await asyncio.wait([serving, *background], return_when=asyncio.FIRST_COMPLETED)
    if serving in done:
        serving.result()
        return
    # A background task never ends on its own: it failed, and the process must not go on
    # looking healthy without it.
    server.should_exit = True
    await serving
    for task in done:
        task.result()
    raise RuntimeError(f"background task {next(iter(done)).get_name()} ended")


async def _cancel(tasks: list[asyncio.Task[None]]) -> None:
    running = [task for task in tasks if not task.done()]
    for task in running:
        task.cancel()
    for task in running:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def run_service(
    service: str,
    *,
    task_queue: str,
    database: DatabasePath,
    migrations: Path,
    build: ServiceFactory,
) -> None:
    """The composition root of a service process: settings, logs, traces, then :func:`serve`."""
    process = f"{service}-service"
    try:
        settings = load_settings()
        data_converter(settings)  # refuses unusable payload keys before anything starts
    except ConfigurationError as exc:
        print(f"{process}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        # Copies after the first log under their own name (payment-service-2); traces keep the
        # service's name.
        name = process if settings.instance == 1 else f"{process}-{settings.instance}"
        configure_logging(name, log_format=settings.log_format, level=settings.log_level)
        with export_traces(process, settings.otlp_endpoint):
            asyncio.run(
                serve(
                    service,
                    settings,
                    task_queue=task_queue,
                    database=database,
                    migrations=migrations,
                    build=build,
                    registry=CollectorRegistry(),
                    temporal_runtime=sdk_metrics_runtime(settings, service),
                )
            )
    except DatabaseUnavailableError as exc:
        print(f"{process}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    except (ConfigurationError, KafkaUnavailableError, TemporalUnavailableError) as exc:
        print(f"{process}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
