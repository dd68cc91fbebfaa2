"""The Kafka clients' security comes from the settings, and bad security settings stop a process."""

import json
import ssl
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.config.kafka import (
    SECRETS_FILE,
    KafkaConnection,
    as_connection,
    kafka_connection,
    kafka_security,
)
from infra.config.settings import ConfigurationError, Settings
from infra.engines.kafka_security import ensure_tls
from runtime import new_admin, new_consumer, new_producer


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(run_dir=tmp_path, **values)  # type: ignore[arg-type]


def test_plaintext_by_default(tmp_path: Path) -> None:
    assert kafka_security(_settings(tmp_path)) == {"security_protocol": "PLAINTEXT"}
    assert as_connection("127.0.0.1:9092") == KafkaConnection("127.0.0.1:9092")


def test_sasl_ssl_from_settings(tmp_path: Path) -> None:
    ca = ensure_tls(tmp_path).ca
    settings = _settings(
        tmp_path,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="payment",
        kafka_sasl_password=SecretStr("s3cret"),
        kafka_ssl_cafile=ca,
    )
    security = kafka_security(settings)
    assert security["security_protocol"] == "SASL_SSL"
    assert security["sasl_mechanism"] == "SCRAM-SHA-512"
    assert security["sasl_plain_username"] == "payment"
    assert security["sasl_plain_password"] == "s3cret"
    assert isinstance(security["ssl_context"], ssl.SSLContext)
    assert security["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    connection = kafka_connection(settings)
    assert "s3cret" not in repr(connection)
    assert str(connection) == settings.kafka_bootstrap_servers
    props = connection.java_properties()
    assert props["security.protocol"] == "SASL_SSL"
    assert props["ssl.truststore.location"] == str(ca)
    assert 'username="payment" password="s3cret"' in props["sasl.jaas.config"]


async def test_every_client_kind_gets_the_security(tmp_path: Path) -> None:
    connection = KafkaConnection(
        "127.0.0.1:9092", "SASL_SSL", "payment", SecretStr("s3cret"), ensure_tls(tmp_path).ca
    )
    # the producer keeps its network client as `client`, the consumer and the admin `_client`
    for client in (
        new_producer(connection).client,
        new_consumer(connection, "g")._client,
        new_admin(connection)._client,
    ):
        assert client._security_protocol == "SASL_SSL"
        assert client._sasl_mechanism == "SCRAM-SHA-512"
        assert client._sasl_plain_username == "payment"
        assert client._ssl_context is not None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({}, ["SAGA_KAFKA_SASL_USERNAME", "SAGA_KAFKA_SASL_PASSWORD"]),
        ({"kafka_sasl_username": "api"}, ["SAGA_KAFKA_SASL_PASSWORD"]),
        (
            {"mode": "production"},
            ["SAGA_KAFKA_SASL_USERNAME", "SAGA_KAFKA_SASL_PASSWORD", "SAGA_KAFKA_SSL_CAFILE"],
        ),
        (
            {"mode": "production", "kafka_sasl_username": "api", "kafka_sasl_password": "x"},
            ["SAGA_KAFKA_SSL_CAFILE"],
        ),
    ],
)
def test_sasl_ssl_without_credentials_refuses(
    tmp_path: Path, values: dict[str, object], named: list[str]
) -> None:
    settings = _settings(tmp_path, kafka_security_protocol="SASL_SSL", **values)
    with pytest.raises(ConfigurationError) as refused:
        kafka_connection(settings)
    for name in named:
        assert name in str(refused.value)


def test_secured_run_dir_gives_its_super_user(tmp_path: Path) -> None:
    settings = _settings(tmp_path, kafka_secured=True)
    with pytest.raises(ConfigurationError, match="saga up"):
        kafka_connection(settings)
    ensure_tls(tmp_path)
    (tmp_path / SECRETS_FILE).write_text(json.dumps({"admin": "pw"}))
    connection = kafka_connection(settings)
    assert connection.sasl_username == "admin"
    assert connection.ssl_cafile == tmp_path.resolve() / "kafka" / "tls" / "ca.pem"
