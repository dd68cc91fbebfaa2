"""The incident webhook's settings and signature, without a server."""

import hashlib
import hmac

import pytest

from infra.config.settings import ConfigurationError, load_settings
from orchestrator.incident_webhook import sign, webhook_body, webhook_config
from tests.support.samples import incident_events
from tests.support.webhook_receiver import verify_signature


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
