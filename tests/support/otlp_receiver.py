"""A tiny OTLP/HTTP trace receiver: what a collector would get from the stack's processes.

It listens on 127.0.0.1, accepts ``POST /v1/traces`` bodies of
``ExportTraceServiceRequest`` (protobuf, optionally gzipped) and keeps every span with its
process's ``service.name``. Anything it cannot read is kept as an error, so a test can
check that the processes sent well-formed requests.
"""

import gzip
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = ["OtlpReceiver", "ReceivedSpan"]


@dataclass(frozen=True)
class ReceivedSpan:
    """One span as the receiver got it."""

    service: str
    trace_id: str
    span_id: str
    parent_span_id: str
    name: str
    kind: str
    """``SPAN_KIND_SERVER``, ``SPAN_KIND_PRODUCER``..."""
    attributes: dict[str, Any]


_SCALARS = frozenset({"string_value", "int_value", "bool_value", "double_value"})


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind in _SCALARS else str(value)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


class OtlpReceiver:
    """An OTLP/HTTP endpoint in a thread of the test process."""

    def __init__(self) -> None:
        self._spans: list[ReceivedSpan] = []
        self.errors: list[str] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="otlp-receiver", daemon=True
        )

    @property
    def endpoint(self) -> str:
        """The base URL to give the processes (``SAGA_OTLP_ENDPOINT``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[ReceivedSpan]:
        """Every span received so far."""
        with self._lock:
            return list(self._spans)

    def wait_for(
        self, complete: Callable[[list[ReceivedSpan]], bool], *, seconds: float = 30.0
    ) -> list[ReceivedSpan]:
        """Every span received, once ``complete`` says they are enough (or time is up)."""
        deadline = time.monotonic() + seconds
        while True:
            spans = self.spans()
            if complete(spans) or time.monotonic() > deadline:
                return spans
            time.sleep(0.2)

    def _keep(self, body: bytes) -> None:
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        received = []
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    received.append(
                        ReceivedSpan(
                            service=service,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=Span.SpanKind.Name(span.kind),
                            attributes=_attributes(span.attributes),
                        )
                    )
        with self._lock:
            self._spans.extend(received)
            self.requests += 1

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                try:
                    if self.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)
                    receiver._keep(body)
                except (OSError, DecodeError) as exc:
                    receiver.errors.append(f"{type(exc).__name__}: {exc}")
                    self.send_error(400)
                    return
                answer = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test's output is no place for an access log

        return Handler
