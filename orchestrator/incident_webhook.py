"""The incident webhook: every incident event POSTed, signed, to ``SAGA_INCIDENT_WEBHOOK_URL``.

A consumer of its own (group ``incident-webhook``, its own store) reads the incident events
from ``order.events`` and POSTs each as JSON: the event's envelope, as the codec's JSON form
gives it. The request is signed with HMAC-SHA256 under ``SAGA_INCIDENT_WEBHOOK_SECRET`` over
``<timestamp>.<body>`` (Stripe's scheme, so receivers know it):

    Saga-Signature: t=<unix seconds>,v1=<hex digest>
    Saga-Event-Type: saga.incident_opened.v1 | saga.incident_resolved.v1
    Saga-Event-Id: <the event's id>
    Saga-Incident-Id: <workflow id>/<step>/<episode>

A 2xx answer delivers it; the delivery is recorded per (incident, state), so neither a
redelivered record nor a restart POSTs it again. A 408, a 429, any other non-2xx answer that
is not a 4xx, or no answer at all is tried again with exponential backoff (the consumer's
retry policy, from the settings); any other 4xx is not (the receiver refused the request).
Either way the event ends in ``order.events.dlq`` with the status in ``dlq_reason``
(``webhook-http-503``, ``webhook-http-400-refused``, ``webhook-unreachable``) and the detail
in ``dlq_error``.
"""

import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from contracts.envelope import AnyEvent
from contracts.events.saga import SagaIncidentOpened, SagaIncidentResolved
from infra.config.settings import ConfigurationError, Settings
from runtime import Database, HandlingFailed, RetryPolicy

__all__ = [
    "EVENT_ID_HEADER",
    "EVENT_TYPE_HEADER",
    "INCIDENT_ID_HEADER",
    "SIGNATURE_HEADER",
    "IncidentWebhook",
    "WebhookConfig",
    "sign",
    "webhook_body",
    "webhook_config",
]

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "Saga-Signature"
EVENT_TYPE_HEADER = "Saga-Event-Type"
EVENT_ID_HEADER = "Saga-Event-Id"
INCIDENT_ID_HEADER = "Saga-Incident-Id"

_STATES = {
    SagaIncidentOpened.EVENT_TYPE: "opened",
    SagaIncidentResolved.EVENT_TYPE: "resolved",
}
_RETRIED_4XX = frozenset({408, 429})


@dataclass(frozen=True)
class WebhookConfig:
    """Where incident events are POSTed, the key that signs them, and how hard to try."""

    url: str
    secret: bytes
    retry: RetryPolicy
    timeout: float


def webhook_config(settings: Settings) -> WebhookConfig | None:
    """The webhook the settings ask for; None without ``SAGA_INCIDENT_WEBHOOK_URL``.

    Raises:
        ConfigurationError: the URL is set without a secret, or is not http(s).
    """
    url = settings.incident_webhook_url
    if not url:
        return None
    if not url.startswith(("http://", "https://")):
        raise ConfigurationError(
            f"SAGA_INCIDENT_WEBHOOK_URL={url!r} is not an http(s) URL: give the receiver's "
            "full address, such as https://pager.example/hooks/saga"
        )
    secret = settings.incident_webhook_secret
    if secret is None or not secret.get_secret_value():
        raise ConfigurationError(
            "SAGA_INCIDENT_WEBHOOK_URL is set but SAGA_INCIDENT_WEBHOOK_SECRET is not: set the "
            "key the receiver verifies Saga-Signature with (or unset the URL)"
        )
    return WebhookConfig(
        url=url,
        secret=secret.get_secret_value().encode(),
        retry=RetryPolicy(
            attempts=settings.incident_webhook_attempts,
            first_backoff=settings.incident_webhook_backoff_seconds,
        ),
        timeout=settings.incident_webhook_timeout_seconds,
    )


def sign(secret: bytes, timestamp: int, body: bytes) -> str:
    """The ``v1`` signature: HMAC-SHA256 of ``<timestamp>.<body>``, in hex."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def webhook_body(event: AnyEvent) -> bytes:
    """The JSON body POSTed for ``event``: its envelope, camelCase as on the wire."""
    return json.dumps(
        event.model_dump(mode="json", by_alias=True), separators=(",", ":"), sort_keys=True
    ).encode()


class IncidentWebhook:
    """The handler of the ``incident-webhook`` consumer: POSTs each incident event once."""

    MIGRATIONS = Path(__file__).parent / "migrations" / "incident_webhooks"

    def __init__(self, config: WebhookConfig, client: httpx.AsyncClient) -> None:
        self._config = config
        self._client = client

    async def deliver(self, event: AnyEvent, db: Database) -> None:
        """POST ``event`` if it is an incident event not delivered before; record it.

        Raises:
            HandlingFailed: the receiver did not take it (the consumer retries it if the
                error says so, then dead-letters it with the reason).
        """
        state = _STATES.get(event.event_type)
        if state is None or not isinstance(event, SagaIncidentOpened | SagaIncidentResolved):
            return
        incident_id = event.data.incident_id
        if _delivered(db, incident_id, state):
            log.info("incident %s (%s) was delivered before: not posted again", incident_id, state)
            return
        status = await self._post(event)
        db.execute(
            "INSERT INTO webhook_deliveries"
            " (incident_id, state, event_id, status_code, delivered_at) VALUES (?, ?, ?, ?, ?)",
            (incident_id, state, str(event.event_id), status, time.time()),
        )

    async def _post(self, event: SagaIncidentOpened | SagaIncidentResolved) -> int:
        body = webhook_body(event)
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: f"t={timestamp},v1={sign(self._config.secret, timestamp, body)}",
            EVENT_TYPE_HEADER: event.event_type,
            EVENT_ID_HEADER: str(event.event_id),
            INCIDENT_ID_HEADER: event.data.incident_id,
        }
        try:
            response = await self._client.post(
                self._config.url, content=body, headers=headers, timeout=self._config.timeout
            )
        except httpx.HTTPError as exc:
            raise HandlingFailed(
                f"no answer from {self._config.url}: {type(exc).__name__}: {exc}",
                reason="webhook-unreachable",
            ) from exc
        status = response.status_code
        if 200 <= status < 300:
            return status
        refused = 400 <= status < 500 and status not in _RETRIED_4XX
        raise HandlingFailed(
            f"{self._config.url} answered HTTP {status}"
            + (" (a refusal: not tried again)" if refused else "")
            + f": {response.text[:200]}",
            reason=f"webhook-http-{status}" + ("-refused" if refused else ""),
            retryable=not refused,
        )


def _delivered(db: Database, incident_id: str, state: str) -> bool:
    row = db.execute(
        "SELECT 1 FROM webhook_deliveries WHERE incident_id = ? AND state = ?",
        (incident_id, state),
    ).fetchone()
    return row is not None
