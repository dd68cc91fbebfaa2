"""A tiny incident webhook receiver in a thread of the test process.

It listens on 127.0.0.1 (a free port), checks every request's ``Saga-Signature`` the way the
docs tell receivers to (HMAC-SHA256 over ``<t>.<body>`` under the shared secret, the
timestamp within five minutes), and keeps what it got: each request, and each incident state
that arrived with a valid signature. A test can make it answer a status code for the next
requests of one incident (``answer``), to see the sender retry, give up, or dead-letter.
"""

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["ReceivedWebhook", "WebhookReceiver", "verify_signature"]

_TOLERANCE_SECONDS = 300


def verify_signature(secret: bytes, header: str, body: bytes, now: float | None = None) -> bool:
    """Whether ``header`` (``t=<unix seconds>,v1=<hex>``) signs ``body`` under ``secret``."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs((time.time() if now is None else now) - timestamp) > _TOLERANCE_SECONDS:
        return False
    expected = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts.get("v1", ""))


@dataclass(frozen=True)
class ReceivedWebhook:
    """One request as the receiver got it."""

    headers: dict[str, str]
    body: dict[str, Any]
    signed: bool
    status: int
    """What the receiver answered."""
    at: float = field(default_factory=time.monotonic)


class WebhookReceiver:
    """An incident webhook endpoint that verifies signatures and counts deliveries."""

    def __init__(self, secret: str) -> None:
        self.secret = secret.encode()
        self.requests: list[ReceivedWebhook] = []
        self._answers: dict[str, list[int]] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )

    @property
    def url(self) -> str:
        """The address to give the orchestrator (``SAGA_INCIDENT_WEBHOOK_URL``)."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/hooks/saga"

    def start(self) -> None:
        """Serve in the background."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def answer(self, incident_id: str, *statuses: int) -> None:
        """Answer the next requests about ``incident_id`` with ``statuses``, then 200."""
        with self._lock:
            self._answers[incident_id] = list(statuses)

    def of(self, incident_id: str) -> list[ReceivedWebhook]:
        """The requests about ``incident_id``, in the order they came."""
        with self._lock:
            return [r for r in self.requests if r.headers.get("saga-incident-id") == incident_id]

    def delivered(self, incident_id: str) -> Counter[str]:
        """How often each state (``saga.incident_opened.v1``...) of ``incident_id`` was taken
        (answered 2xx) with a valid signature."""
        return Counter(
            r.headers["saga-event-type"]
            for r in self.of(incident_id)
            if r.signed and 200 <= r.status < 300
        )

    def _receive(self, headers: dict[str, str], raw: bytes) -> int:
        signed = verify_signature(self.secret, headers.get("saga-signature", ""), raw)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        incident_id = headers.get("saga-incident-id", "")
        with self._lock:
            planned = self._answers.get(incident_id)
            status = planned.pop(0) if planned else (200 if signed else 401)
            self.requests.append(ReceivedWebhook(headers, body, signed, status))
        return status

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class _Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = {name.lower(): value for name, value in self.headers.items()}
                status = receiver._receive(headers, raw)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass  # quiet test output

        return _Handler
