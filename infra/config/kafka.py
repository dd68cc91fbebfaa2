"""This process's Kafka connection: where the brokers are and how to authenticate to them.

A :class:`KafkaConnection` is built once per process from its settings
(:func:`kafka_connection`) and handed to every client the runtime makes. A plain
``host:port,...`` string is accepted wherever a connection is, and means PLAINTEXT.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from infra.config.settings import ConfigurationError, Settings

__all__ = [
    "ADMIN_USER",
    "SASL_MECHANISM",
    "SECRETS_FILE",
    "KafkaConnection",
    "KafkaSecurityError",
    "KafkaTarget",
    "as_connection",
    "kafka_connection",
    "kafka_security",
    "read_kafka_secrets",
    "scram_jaas_config",
    "tls_dir",
]


SASL_MECHANISM = "SCRAM-SHA-512"


class KafkaSecurityError(ValueError):
    """The Kafka security settings cannot be used; the message names them."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where the Kafka brokers are and how this process authenticates to them."""

    bootstrap_servers: str
    security_protocol: Literal["PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    ssl_cafile: Path | None = None
    """CA certificate (PEM) of the brokers; None trusts the system's certificate authorities."""

    def __post_init__(self) -> None:
        if self.security_protocol == "SASL_SSL" and (
            not self.sasl_username or self.sasl_password is None
        ):
            raise KafkaSecurityError(
                "Kafka over SASL_SSL needs a SCRAM user and password: set "
                "SAGA_KAFKA_SASL_USERNAME and SAGA_KAFKA_SASL_PASSWORD"
            )

    def __str__(self) -> str:
        """The brokers' addresses, as messages show them (never the password)."""
        return self.bootstrap_servers

    @property
    def secured(self) -> bool:
        """Whether the clients authenticate over TLS."""
        return self.security_protocol == "SASL_SSL"

    def as_user(self, username: str, password: str) -> "KafkaConnection":
        """The same brokers over SASL_SSL as another SCRAM user."""
        return KafkaConnection(
            self.bootstrap_servers, "SASL_SSL", username, SecretStr(password), self.ssl_cafile
        )

    def client_kwargs(self) -> dict[str, Any]:
        """The aiokafka keyword arguments of every client: brokers and security."""
        kwargs: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.secured:
            assert self.sasl_password is not None  # checked in __post_init__
            kwargs.update(
                sasl_mechanism=SASL_MECHANISM,
                sasl_plain_username=self.sasl_username,
                sasl_plain_password=self.sasl_password.get_secret_value(),
                ssl_context=create_ssl_context(
                    cafile=str(self.ssl_cafile) if self.ssl_cafile else None
                ),
            )
        return kwargs

    def java_properties(self) -> dict[str, str]:
        """The same connection in the Java client's property names (for Kafka's own tools)."""
        props = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
        }
        if self.secured:
            assert self.sasl_password is not None
            props.update(
                {
                    "sasl.mechanism": SASL_MECHANISM,
                    "sasl.jaas.config": scram_jaas_config(
                        self.sasl_username or "", self.sasl_password.get_secret_value()
                    ),
                }
            )
            if self.ssl_cafile is not None:
                props.update(
                    {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(self.ssl_cafile)}
                )
        return props


KafkaTarget = KafkaConnection | str
"""A connection, or bootstrap servers alone (PLAINTEXT)."""


def scram_jaas_config(username: str, password: str) -> str:
    """The JAAS line a Java client (or the broker's inter-broker client) logs in with."""
    return (
        "org.apache.kafka.common.security.scram.ScramLoginModule required "
        f'username="{username}" password="{password}";'
    )


def kafka_connection(settings: Settings) -> KafkaConnection:
    """This process's Kafka connection, from its settings.

    Raises:
        ConfigurationError: SASL_SSL without a user or password, or, in production, without
            the brokers' CA certificate (the message names the settings to set).
    """
    if (
        settings.kafka_secured
        and settings.kafka_embedded
        and settings.kafka_security_protocol == "PLAINTEXT"
    ):
        return _run_admin(settings)
    missing = []
    if settings.kafka_security_protocol == "SASL_SSL":
        if not settings.kafka_sasl_username:
            missing.append("SAGA_KAFKA_SASL_USERNAME")
        if (
            settings.kafka_sasl_password is None
            or not settings.kafka_sasl_password.get_secret_value()
        ):
            missing.append("SAGA_KAFKA_SASL_PASSWORD")
        if settings.mode == "production" and settings.kafka_ssl_cafile is None:
            missing.append("SAGA_KAFKA_SSL_CAFILE")
    if missing:
        raise ConfigurationError(
            f"SAGA_KAFKA_SECURITY_PROTOCOL=SASL_SSL (mode {settings.mode}) needs "
            f"{', '.join(missing)}: set {'it' if len(missing) == 1 else 'them'} in the "
            "environment or in .env"
        )
    if settings.kafka_ssl_cafile is not None and not settings.kafka_ssl_cafile.is_file():
        raise ConfigurationError(
            f"SAGA_KAFKA_SSL_CAFILE={settings.kafka_ssl_cafile} is not a readable file"
        )
    return KafkaConnection(
        bootstrap_servers=settings.kafka_brokers,
        security_protocol=settings.kafka_security_protocol,
        sasl_username=settings.kafka_sasl_username,
        sasl_password=settings.kafka_sasl_password,
        ssl_cafile=settings.kafka_ssl_cafile,
    )


def _run_admin(settings: Settings) -> KafkaConnection:
    """The super user of the run directory's secured embedded broker: what `saga up` and the
    CLI's tools connect as (the processes `saga up` starts get users of their own)."""
    passwords = read_kafka_secrets(settings.run_dir) or {}
    if ADMIN_USER not in passwords:
        raise ConfigurationError(
            f"SAGA_KAFKA_SECURED is on but {settings.run_dir} has no Kafka secrets yet: start "
            "the stack with `saga up`, or set SAGA_KAFKA_SECURITY_PROTOCOL=SASL_SSL, "
            "SAGA_KAFKA_SASL_USERNAME, SAGA_KAFKA_SASL_PASSWORD and SAGA_KAFKA_SSL_CAFILE"
        )
    return KafkaConnection(
        bootstrap_servers=settings.kafka_brokers,
        security_protocol="SASL_SSL",
        sasl_username=ADMIN_USER,
        sasl_password=SecretStr(passwords[ADMIN_USER]),
        ssl_cafile=tls_dir(settings.run_dir.resolve()) / "ca.pem",
    )


def kafka_security(settings: Settings) -> dict[str, Any]:
    """The aiokafka security keyword arguments these settings give every client.

    Raises:
        ConfigurationError: see :func:`kafka_connection`.
    """
    kwargs = kafka_connection(settings).client_kwargs()
    del kwargs["bootstrap_servers"]
    return kwargs


def as_connection(target: KafkaTarget) -> KafkaConnection:
    """``target`` as a connection (bootstrap servers alone: PLAINTEXT)."""
    return target if isinstance(target, KafkaConnection) else KafkaConnection(target)


SECRETS_FILE = "kafka-secrets.json"


ADMIN_USER = "admin"
"""The super user: the broker's own inter-broker client, `saga up`, and the CLI's tools."""


def read_kafka_secrets(run_dir: Path) -> dict[str, str] | None:
    """The passwords of the run directory's users, or None before the first secured `saga up`."""
    try:
        kept = json.loads((run_dir / SECRETS_FILE).read_text())
    except FileNotFoundError:
        return None
    if not isinstance(kept, dict) or not all(isinstance(v, str) for v in kept.values()):
        raise ValueError(f"{run_dir / SECRETS_FILE} is not a JSON object of passwords")
    return {str(user): str(password) for user, password in kept.items()}


def tls_dir(run_dir: Path) -> Path:
    """Where the run's TLS files are."""
    return run_dir / "kafka" / "tls"
