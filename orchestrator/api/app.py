"""The orchestrator API's app factory: its composition root."""

import asyncio
import contextlib
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry, make_asgi_app
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from eventbus import EventBusMetrics, Outbox, OutboxRelay, new_producer, open_database
from infra.settings import Settings
from infra.temporal_server import wait_for_temporal
from infra.tracing import temporal_interceptors
from orchestrator.api.routes import health, orders, sagas
from orchestrator.api.service import (
    ActionRefused,
    OrderConflict,
    SagaNotFound,
    SagaService,
    SagaUnavailable,
)
from orchestrator.timeline import Timeline

__all__ = ["create_app"]

_STATUS_OF: dict[type[Exception], int] = {
    SagaNotFound: 404,
    OrderConflict: 409,
    ActionRefused: 409,
    SagaUnavailable: 503,
}


def _probe_or_scrape(scope: MutableMapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(("/healthz", "/readyz", "/metrics"))


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    temporal_runtime: Runtime | None = None,
) -> FastAPI:
    """Build the API: routes, the Temporal client (connected at start-up), the read model of
    the orders' events, the outbox of the repairs it publishes, and ``/metrics``.

    ``temporal_runtime`` is the process's Temporal runtime, the one that exports the SDK's
    metrics (:func:`infra.sdk_metrics.sdk_metrics_runtime`); by default the SDK's own.
    """
    registry = registry or CollectorRegistry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await wait_for_temporal(
            settings.temporal_address,
            settings.temporal_namespace,
            wait_seconds=settings.startup_timeout_seconds,
            data_converter=pydantic_data_converter,
            interceptors=temporal_interceptors(settings.otlp_endpoint),
            runtime=temporal_runtime,
        )
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        timeline_db = open_database(settings.run_dir / "orchestrator.db")
        outbox_db = open_database(settings.run_dir / "api.db")
        outbox = Outbox(outbox_db)
        relay = OutboxRelay(
            outbox,
            lambda: new_producer(settings.kafka_bootstrap_servers),
            metrics=EventBusMetrics(registry),
        )
        app.state.temporal = client
        app.state.sagas = SagaService(
            client, settings, Timeline(timeline_db), outbox_db, outbox, base_url=settings.api_url
        )
        relaying = asyncio.create_task(relay.run(), name="api-outbox-relay")
        try:
            yield
        finally:
            relaying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await relaying
            outbox_db.close()
            timeline_db.close()

    app = FastAPI(
        title="saga-orchestrator",
        summary="Start order sagas, follow each saga beside its events, find and repair "
        "the stuck ones.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry: with traces on (SAGA_OTLP_ENDPOINT), one server span
        # per request, continuing a caller's traceparent. Metrics are Prometheus's and logs
        # Python's, and probes and scrapes would only bury the orders' traces.
        telemetry={
            "operation_spans": False,
            "metrics": False,
            "logs": False,
            "exclude": _probe_or_scrape,
        },
    )
    app.state.settings = settings

    async def problem(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=_STATUS_OF[type(exc)], content={"detail": str(exc)})

    async def temporal_down(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"Temporal did not answer: {exc}"})

    for error in _STATUS_OF:
        app.add_exception_handler(error, problem)
    app.add_exception_handler(RPCError, temporal_down)
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(sagas.router)
    app.mount("/metrics", make_asgi_app(registry=registry))
    return app
