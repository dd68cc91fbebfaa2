"""Run the orchestrator API: `python -m orchestrator.api`."""

import sys

import uvicorn

from infra.config.kafka import kafka_connection
from infra.config.logs import configure_logging
from infra.config.payload_codec import data_converter
from infra.config.sdk_metrics import sdk_metrics_runtime
from infra.config.settings import ConfigurationError, load_settings
from infra.config.temporal import temporal_connection
from infra.config.tracing import export_traces
from orchestrator.api.app import create_app
from orchestrator.api.auth import TokenStore
from orchestrator.api.ui import session_secret

_PROCESS = "orchestrator-api"


def main() -> None:
    """Serve the API on the configured address until SIGTERM."""
    try:
        settings = load_settings()
        data_converter(settings)  # refuses unusable payload keys before anything starts
        tokens = TokenStore.from_settings(settings)  # before anything connects or listens
        kafka_connection(settings)  # refuses incomplete Kafka security settings
        temporal_connection(settings)  # refuses Temporal TLS files it cannot use
        session_secret(settings)  # refuses a missing or short secret of the web pages
    except ConfigurationError as exc:
        print(f"{_PROCESS}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(_PROCESS, log_format=settings.log_format, level=settings.log_level)
    try:
        temporal_runtime = sdk_metrics_runtime(settings, "api")
    except ConfigurationError as exc:
        print(f"{_PROCESS}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    with export_traces(_PROCESS, settings.otlp_endpoint):
        uvicorn.run(
            create_app(settings, temporal_runtime=temporal_runtime, tokens=tokens),
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # uvicorn's records go through this process's log handler
            # Idle connections outlive the clients' (httpx: 5 s) and load balancers' (60 s)
            # own keep-alive, so the server never closes one just as a request goes out on it.
            timeout_keep_alive=75,
        )


main()
