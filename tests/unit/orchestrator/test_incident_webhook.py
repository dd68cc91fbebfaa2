"""The incident webhook's settings and signature, and its record of deliveries on a real store
(SQLite and PostgreSQL) against a receiver in the test process."""

import hashlib
import hmac
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from contracts.events.saga import SagaIncidentOpened, SagaIncidentResolved
from infra.config.settings import ConfigurationError, load_settings
from orchestrator.incident_webhook import (
    IncidentWebhook,
    WebhookConfig,
    sign,
    webhook_body,
    webhook_config,
)
from runtime import RetryPolicy, Where, open_database, transaction
from tests.support.samples import incident_events
from tests.support.webhook_receiver import WebhookReceiver, verify_signature


def test_without_a_url_there_is_no_webhook() -> None:
    assert webhook_config(load_settings(incident_webhook_secret="s")) is None


def test_a_url_without_a_secret_is_refused_with_what_to_set() -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(incident_webhook_url="https://pager.example/hooks")
    assert "SAGA_INCIDENT_WEBHOOK_SECRET=None" in str(refused.value)
    assert "required with SAGA_INCIDENT_WEBHOOK_URL" in str(refused.value)
    with pytest.raises(ConfigurationError, match="required with SAGA_INCIDENT_WEBHOOK_URL"):
        load_settings(
            incident_webhook_url="https://pager.example/hooks", incident_webhook_secret=""
        )


def test_a_url_that_is_not_http_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="not an http"):
        webhook_config(
            load_settings(incident_webhook_url="pager.example", incident_webhook_secret="s")
        )


def test_attempts_that_could_outlast_the_consumers_poll_interval_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="may hold one event over 240 s"):
        load_settings(incident_webhook_attempts=8, incident_webhook_backoff_seconds=2)
    # 7 attempts, 1 s: 63 s of backoff and 7 x 5 s of POSTs fit.
    assert load_settings(incident_webhook_attempts=7).incident_webhook_attempts == 7


def test_the_settings_give_the_retry_policy() -> None:
    config = webhook_config(
        load_settings(
            incident_webhook_url="https://pager.example/hooks",
            incident_webhook_secret="s3cret",
            incident_webhook_attempts=4,
            incident_webhook_backoff_seconds=0.5,
        )
    )
    assert config is not None
    assert config.secret == b"s3cret"
    assert (config.retry.attempts, config.retry.backoff(1), config.retry.backoff(3)) == (4, 0.5, 2)


def test_the_signature_is_hmac_sha256_of_the_timestamp_a_dot_and_the_body() -> None:
    body = webhook_body(incident_events()[0])
    expected = hmac.new(b"k", b"1765000000." + body, hashlib.sha256).hexdigest()

    assert sign(b"k", 1765000000, body) == expected
    header = f"t=1765000000,v1={expected}"
    assert verify_signature(b"k", header, body, now=1765000100)
    assert not verify_signature(b"other", header, body, now=1765000100)
    assert not verify_signature(b"k", header, body + b" ", now=1765000100)
    assert not verify_signature(b"k", header, body, now=1765000000 + 3600)  # replayed late


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver("s3cret")
    server.start()
    yield server
    server.stop()


async def test_a_delivered_state_is_recorded_in_the_store_and_not_posted_again(
    database_at: Callable[[str], Where], receiver: WebhookReceiver
) -> None:
    """On either store (SQLite, PostgreSQL in its own schema, as the worker opens it)."""
    db = open_database(
        database_at("orchestrator"),
        migrations=[IncidentWebhook.MIGRATIONS],
        schema="incident_webhook",
    )
    config = WebhookConfig(
        url=receiver.url, secret=b"s3cret", retry=RetryPolicy(attempts=1), timeout=5
    )
    opened, resolved = incident_events()
    reemitted = opened.model_copy(update={"event_id": uuid.uuid4()})
    async with httpx.AsyncClient() as client:
        webhook = IncidentWebhook(config, client)
        for event in (opened, reemitted, resolved, resolved):
            with transaction(db):
                await webhook.deliver(event, db)

    assert isinstance(opened, SagaIncidentOpened)
    incident_id = opened.data.incident_id
    assert receiver.delivered(incident_id) == {
        SagaIncidentOpened.EVENT_TYPE: 1,
        SagaIncidentResolved.EVENT_TYPE: 1,
    }
    assert len(receiver.of(incident_id)) == 2
    rows = db.execute(
        "SELECT state, event_id, status_code FROM webhook_deliveries WHERE incident_id = ?"
        " ORDER BY state",
        (incident_id,),
    ).fetchall()
    assert [tuple(row) for row in rows] == [
        ("opened", str(opened.event_id), 200),
        ("resolved", str(resolved.event_id), 200),
    ]
    db.close()
