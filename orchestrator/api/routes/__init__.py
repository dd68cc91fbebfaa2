"""The API's routes, one module per resource; the web pages share their id and stream."""

from orchestrator.api.routes._common import IdPath, saga_event_stream

__all__ = ["IdPath", "saga_event_stream"]
