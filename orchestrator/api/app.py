"""The orchestrator API's app factory: its composition root.

Hostile requests get a 4xx that names what is wrong, never a 5xx: a body over
``SAGA_API_MAX_BODY_BYTES`` is refused (413) before it is read, a body that is not JSON by
its content type is refused (415), one that cannot be read as JSON text (not UTF-8, nested
too deeply) is a 400, and a validation error (422) echoes the input it refuses only as
JSON can carry it, and shortened.
"""

import math
import re
from collections.abc import AsyncIterator, MutableMapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from temporalio.runtime import Runtime
from temporalio.service import RPCError

from infra.config.kafka import kafka_connection
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from infra.config.tracing import temporal_interceptors
from orchestrator.api.auth import Scope as TokenScope
from orchestrator.api.auth import TokenStore, require_scope
from orchestrator.api.ops_log import OperatorLog
from orchestrator.api.routes import health, ops_log, orders, returns, sagas
from orchestrator.api.routes.codec import CodecCors, codec_router
from orchestrator.api.service import (
    ActionRefused,
    OrderConflict,
    OrderNotFound,
    ReturnConflict,
    SagaNotFound,
    SagaService,
    SagaUnavailable,
)
from orchestrator.api.ui import add_ui, is_ui_path, refused_page, start_ui
from orchestrator.orders import OrderBook
from orchestrator.queries import OrderQueries
from orchestrator.queries import database_path as orchestrator_database
from orchestrator.timeline import Timeline
from runtime import (
    EventBusMetrics,
    Outbox,
    SchemaRegistry,
    SchemaRegistryMetrics,
    open_store,
    relaying,
    wait_for_temporal,
)

__all__ = ["create_app", "outbox_database", "ui_origins"]

_STATUS_OF: dict[type[Exception], int] = {
    SagaNotFound: 404,
    OrderNotFound: 404,
    OrderConflict: 409,
    ReturnConflict: 409,
    ActionRefused: 409,
    SagaUnavailable: 503,
}


# How much of a refused input a validation error shows.
_SHOWN_CHARACTERS = 100
_SHOWN_ITEMS = 10
_SHOWN_DEPTH = 3
# Shown as \uXXXX text: control characters, lone surrogates, line and paragraph separators,
# bidirectional embeddings, overrides and isolates (what free text refuses, see models.py).
_ESCAPED = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _probe_or_scrape(scope: MutableMapping[str, Any]) -> bool:
    return str(scope.get("path", "")).startswith(("/healthz", "/readyz", "/metrics"))


def _is_json(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _is_form(content_type: str | None) -> bool:
    media_type = (content_type or "").partition(";")[0].strip().lower()
    return media_type == "application/x-www-form-urlencoded"


class _RequestBodyGuard:
    """Refuses the request bodies no route takes, before any route reads them: larger than
    ``max_bytes`` (413), or sent to a route that takes one without a JSON content type (415;
    every body here is JSON).

    A body within the limit is read here and handed on whole, so a route never gets more
    than ``max_bytes`` of it, whatever the client declared or streamed.

    The web pages' forms (``/ui``) are the exception: there an HTML form's
    ``application/x-www-form-urlencoded`` body is taken too.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = headers.get("content-length")
        if (declared is None or declared == "0") and "transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body
            return
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await _refuse(scope, receive, send, 413, self._too_large(int(declared)))
            return
        content_type = headers.get("content-type")
        if scope["method"] in ("POST", "PUT", "PATCH") and not (
            _is_json(content_type) or (is_ui_path(scope["path"]) and _is_form(content_type))
        ):
            sent = f"not {_shown(content_type)}" if content_type else "no Content-Type was sent"
            detail = (
                f"the request body must be JSON, sent as Content-Type: application/json ({sent})"
            )
            await _refuse(scope, receive, send, 415, detail)
            return
        body = bytearray()
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _refuse(scope, receive, send, 413, self._too_large(None))
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()  # what comes after the body: a disconnect
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self, declared: int | None) -> str:
        size = f"{declared} bytes" if declared is not None else f"more than {self.max_bytes} bytes"
        return (
            f"the request body is {size}; this API takes at most {self.max_bytes} bytes "
            "(SAGA_API_MAX_BODY_BYTES)"
        )


async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
    # What is left of the body stays unread: the server closes the connection after this.
    await JSONResponse({"detail": detail}, status_code=status)(scope, receive, send)


def _shown(value: Any, depth: int = 0) -> Any:
    """A refused input as a validation error may echo it: what JSON can carry (no NaN, no
    lone surrogates), characters that would garble a terminal or a page as ``\\uXXXX`` text,
    strings cut short, and no deeper or longer than a person reads."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 10**_SHOWN_CHARACTERS else _shown(str(value))
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        text = _ESCAPED.sub(lambda found: f"\\u{ord(found.group()):04x}", value)
        if len(text) <= _SHOWN_CHARACTERS:
            return text
        return f"{text[:_SHOWN_CHARACTERS]}... ({len(value)} characters)"
    if isinstance(value, dict):
        if depth >= _SHOWN_DEPTH:
            return f"(an object of {len(value)} fields)"
        shown = {
            str(_shown(str(k))): _shown(v, depth + 1) for k, v in list(value.items())[:_SHOWN_ITEMS]
        }
        if len(value) > _SHOWN_ITEMS:
            shown["..."] = f"({len(value) - _SHOWN_ITEMS} more fields)"
        return shown
    if isinstance(value, list | tuple):
        if depth >= _SHOWN_DEPTH:
            return f"(an array of {len(value)} items)"
        items = [_shown(item, depth + 1) for item in value[:_SHOWN_ITEMS]]
        if len(value) > _SHOWN_ITEMS:
            items.append(f"({len(value) - _SHOWN_ITEMS} more items)")
        return items
    return _shown(str(value))


def _validation_problem(error: dict[str, Any]) -> dict[str, Any]:
    """One validation error as the API answers it: FastAPI's, with the input JSON-safe and
    short, and the reason a JSON text could not be parsed in the message."""
    problem = dict(error)
    if "input" in problem:
        problem["input"] = _shown(problem["input"])
    context = problem.get("ctx")
    if isinstance(context, dict):
        problem["ctx"] = {str(k): _shown(v) for k, v in context.items()}
        if problem.get("type") == "json_invalid" and "error" in context:
            where = problem.get("loc", ())[-1:]
            problem["msg"] = f"the body is not valid JSON: {_shown(context['error'])}" + (
                f" (at character {where[0]})" if where and isinstance(where[0], int) else ""
            )
    return problem


def _unreadable_body(cause: BaseException | None) -> str:
    """Why a body that FastAPI could not parse is unreadable, for its 400."""
    if isinstance(cause, RecursionError):
        return "the body is not JSON this API can read: arrays and objects nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return (
            f"the body is not UTF-8 text: byte 0x{cause.object[cause.start]:02x} "
            f"at position {cause.start}"
        )
    if cause is not None:
        # Python's own limits (a number of more than 4300 digits); what follows ";" is
        # advice for Python programmers.
        reason = str(cause).partition(";")[0]
        return f"the body is not JSON this API can read: {_shown(reason)}"
    return "the body is not JSON this API can read"


def outbox_database(run_dir: Path) -> Path:
    """Where the API keeps its outbox (the ``order.repaired`` events of its repairs) and its
    operator log."""
    return run_dir / "api.db"


def ui_origins(settings: Settings) -> list[str]:
    """The origins of the Temporal Web UI, which calls the codec endpoint from the browser
    (on loopback, by either name the user may have typed)."""
    origins = [settings.temporal_ui_url]
    host, port = settings.temporal_address.rsplit(":", 1)[0], settings.temporal_ui_port
    if host in ("127.0.0.1", "localhost"):
        origins = [f"http://127.0.0.1:{port}", f"http://localhost:{port}"]
    return origins


def create_app(
    settings: Settings,
    registry: CollectorRegistry | None = None,
    *,
    temporal_runtime: Runtime | None = None,
    tokens: TokenStore | None = None,
) -> FastAPI:
    """Build the API: routes, the Temporal client (connected at start-up), the read model of
    the orders' events, the outbox of the repairs it publishes, and ``/metrics``.

    ``temporal_runtime`` is the process's Temporal runtime, the one that exports the SDK's
    metrics (:func:`infra.config.sdk_metrics.sdk_metrics_runtime`); by default the SDK's own.
    ``tokens``: the bearer tokens it accepts (by default :meth:`TokenStore.from_settings`).
    With payload encryption on, the API also serves the codec endpoint (``/codec``) for the
    Temporal Web UI, to tokens with the ``codec:decode`` scope.

    Raises:
        ConfigurationError: in production, ``SAGA_API_TOKENS`` is missing or a placeholder;
            payload encryption is on and its keys cannot be used.
    """
    registry = registry or CollectorRegistry()
    converter = data_converter(settings)
    kafka_connection(settings)  # a bad Kafka setting stops the API before it serves

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = await wait_for_temporal(
            temporal_connection(settings),
            settings.temporal_namespace,
            wait_seconds=settings.startup_timeout_seconds,
            data_converter=converter,
            interceptors=temporal_interceptors(settings.otlp_endpoint),
            runtime=temporal_runtime,
        )
        settings.run_dir.mkdir(parents=True, exist_ok=True)
        timeline_db = open_store(
            settings,
            "orchestrator",
            orchestrator_database(settings.run_dir),
            migrations=[OrderBook.MIGRATIONS],
        )
        outbox_db = open_store(
            settings,
            "orchestrator",
            outbox_database(settings.run_dir),
            migrations=[OperatorLog.MIGRATIONS],
            schema="api",
        )
        try:
            outbox = Outbox(outbox_db)
            app.state.temporal = client
            app.state.sagas = SagaService(
                client,
                settings,
                Timeline(timeline_db),
                outbox_db,
                outbox,
                OrderQueries(timeline_db),
                base_url=settings.api_url,
            )
            start_ui(app, client)
            # The runtime's relay wiring, as every service's: the lease (copies of the API
            # share its outbox), and on stop the repairs written last are published.
            schemas = SchemaRegistry.from_settings(
                settings, metrics=SchemaRegistryMetrics(registry)
            )
            async with (
                schemas,
                relaying(
                    "api", settings, outbox, metrics=EventBusMetrics(registry), schemas=schemas
                ),
            ):
                yield
        finally:
            outbox_db.close()
            timeline_db.close()

    app = FastAPI(
        title="saga-orchestrator",
        summary="Start order and return sagas, follow each saga beside its events, find and "
        "repair the stuck ones.",
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
    app.state.tokens = tokens or TokenStore.from_settings(settings)

    async def problem(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=_STATUS_OF[type(exc)], content={"detail": str(exc)})

    async def temporal_down(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"Temporal did not answer: {exc}"})

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = [_validation_problem(error) for error in exc.errors()]
        if is_ui_path(request.url.path):
            said = "; ".join(
                f"{'.'.join(str(part) for part in problem.get('loc', ()))}: {problem.get('msg')}"
                for problem in problems
            )
            return refused_page(request, 422, said)
        return JSONResponse(status_code=422, content={"detail": jsonable_encoder(problems)})

    async def http_problem(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == "There was an error parsing the body":
            # FastAPI's answer when the body is no JSON it can parse; the cause says why.
            return JSONResponse(
                status_code=400, content={"detail": _unreadable_body(exc.__cause__)}
            )
        return await http_exception_handler(request, exc)

    for error in _STATUS_OF:
        app.add_exception_handler(error, problem)
    app.add_exception_handler(RPCError, temporal_down)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_problem)
    app.add_middleware(_RequestBodyGuard, max_bytes=settings.api_max_body_bytes)
    app.include_router(health.router)
    app.include_router(orders.router)
    app.include_router(returns.router)
    app.include_router(sagas.router)
    app.include_router(ops_log.router)
    add_ui(app, settings)
    if converter.payload_codec is not None:
        app.include_router(
            codec_router(
                converter.payload_codec,
                dependencies=[Depends(require_scope(TokenScope.CODEC_DECODE))],
            )
        )
        app.add_middleware(CodecCors, origins=ui_origins(settings))
    app.mount("/metrics", make_asgi_app(registry=registry))
    return app
