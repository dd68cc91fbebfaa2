"""The orchestrator API's app factory: its composition root."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app
from temporalio.contrib.pydantic import pydantic_data_converter

from infra.settings import Settings
from infra.temporal_server import wait_for_temporal
from orchestrator.api.routes import health

__all__ = ["create_app"]


def create_app(settings: Settings, registry: CollectorRegistry | None = None) -> FastAPI:
    """Build the API: routes, the Temporal client (connected at start-up) and ``/metrics``."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.temporal = await wait_for_temporal(
            settings.temporal_address,
            settings.temporal_namespace,
            wait_seconds=settings.startup_timeout_seconds,
            data_converter=pydantic_data_converter,
        )
        yield

    app = FastAPI(
        title="saga-orchestrator",
        summary="Start order sagas and follow each saga beside its event stream.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.include_router(health.router)
    app.mount("/metrics", make_asgi_app(registry=registry or CollectorRegistry()))
    return app
