"""Run the orchestrator API: `python -m orchestrator.api`."""

import sys

import uvicorn

from infra.logs import configure_logging
from infra.sdk_metrics import sdk_metrics_runtime
from infra.settings import ConfigurationError, load_settings
from infra.tracing import export_traces
from orchestrator.api.app import create_app

_PROCESS = "orchestrator-api"


def main() -> None:
    """Serve the API on the configured address until SIGTERM."""
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"{_PROCESS}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(_PROCESS, log_format=settings.log_format, level=settings.log_level)
    try:
        temporal_runtime = sdk_metrics_runtime(settings, "api")
        app = create_app(settings, temporal_runtime=temporal_runtime)
    except ConfigurationError as exc:
        print(f"{_PROCESS}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    with export_traces(_PROCESS, settings.otlp_endpoint):
        uvicorn.run(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_config=None,  # uvicorn's records go through this process's log handler
        )


main()
