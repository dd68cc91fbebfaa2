"""What every service process shares: its Temporal worker, its health and metrics endpoint."""

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import uvicorn
from fastapi import FastAPI
from prometheus_client import CollectorRegistry, make_asgi_app
from temporalio import activity
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Worker

from infra.kafka_broker import KafkaUnavailableError, wait_for_kafka
from infra.logs import configure_logging
from infra.settings import ConfigurationError, Settings, load_settings
from infra.temporal_server import TemporalUnavailableError, wait_for_temporal

__all__ = ["health_app", "ping_activity", "run_service", "serve"]

log = logging.getLogger(__name__)


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
    app = FastAPI(title=f"{service} service", docs_url=None, redoc_url=None)

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
    activities: Sequence[Callable[..., Any]],
    registry: CollectorRegistry,
) -> None:
    """Connect to Kafka and Temporal, then poll ``task_queue`` until SIGTERM or SIGINT."""
    timeout = settings.startup_timeout_seconds
    await wait_for_kafka(settings.kafka_bootstrap_servers, wait_seconds=timeout)
    client = await wait_for_temporal(
        settings.temporal_address,
        settings.temporal_namespace,
        wait_seconds=timeout,
        data_converter=pydantic_data_converter,
    )
    config = uvicorn.Config(
        health_app(service, registry),
        host=settings.api_host,
        port=settings.service_port(service),
        log_level="warning",
    )
    server = uvicorn.Server(config)
    # uvicorn catches SIGTERM/SIGINT while serving and raises them again when it returns;
    # ignoring them then lets the worker below finish its running activities.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    async with Worker(
        client, task_queue=task_queue, activities=[ping_activity(service), *activities]
    ):
        log.info("%s service polling task queue %r", service, task_queue)
        await server.serve()
    log.info("%s service stopped", service)


def run_service(
    service: str,
    *,
    task_queue: str,
    activities: Callable[[Settings, CollectorRegistry], Sequence[Callable[..., Any]]],
) -> None:
    """The composition root of a service process: settings, logging, then :func:`serve`."""
    configure_logging(f"{service}-service")
    try:
        settings = load_settings()
        registry = CollectorRegistry()
        asyncio.run(
            serve(
                service,
                settings,
                task_queue=task_queue,
                activities=activities(settings, registry),
                registry=registry,
            )
        )
    except (ConfigurationError, KafkaUnavailableError, TemporalUnavailableError) as exc:
        print(f"{service}-service: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
