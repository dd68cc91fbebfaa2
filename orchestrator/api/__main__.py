"""Run the orchestrator API: `python -m orchestrator.api`."""

import sys

import uvicorn

from infra.logs import configure_logging
from infra.settings import ConfigurationError, load_settings
from orchestrator.api.app import create_app


def main() -> None:
    """Serve the API on the configured address until SIGTERM."""
    configure_logging("orchestrator-api")
    try:
        settings = load_settings()
    except ConfigurationError as exc:
        print(f"orchestrator-api: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port)


main()
