"""This process's Temporal connection: where the frontend is and how to authenticate to it.

A :class:`TemporalConnection` is built once per process from its settings
(:func:`temporal_connection`): plain TCP for the embedded dev server; TLS with the server's CA,
a client certificate (mTLS) or an API key (Temporal Cloud's way) for an existing cluster. Every
file it names is read and checked here, so a certificate that cannot be used stops the process
at once with one line naming the setting, not after a minute of failing handshakes.
"""

from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from temporalio.service import TLSConfig

from infra.config.settings import ConfigurationError, Settings

__all__ = ["TemporalConnection", "frontend_tls_dir", "temporal_connection"]

_CA = "SAGA_TEMPORAL_TLS_CA_FILE"
_CERT = "SAGA_TEMPORAL_TLS_CERT_FILE"
_KEY = "SAGA_TEMPORAL_TLS_KEY_FILE"


@dataclass(frozen=True)
class TemporalConnection:
    """Where Temporal's frontend is and how this process connects to it."""

    address: str
    tls: TLSConfig | None = None
    """None: plain TCP; else TLS with these roots, client certificate and server name."""
    api_key: str | None = field(default=None, repr=False)
    """Sent as ``Authorization: Bearer <key>`` on every call."""

    def __str__(self) -> str:
        """The frontend's address, as messages show it (never the key)."""
        return self.address

    @property
    def secured(self) -> bool:
        """Whether the connection uses TLS."""
        return self.tls is not None


def frontend_tls_dir(run_dir: Path) -> Path:
    """Where a cluster stack keeps the certificates of its full server's mTLS (``saga up``
    with ``SAGA_TEMPORAL_MTLS``): present only while its frontend requires them."""
    return run_dir / "temporal" / "tls"


def _run_certificates(settings: Settings) -> Settings:
    """``settings`` with the run's client certificate, for a process of a cluster stack whose
    frontend requires one (and no TLS setting of its own)."""
    folder = frontend_tls_dir(settings.run_dir)
    if not (folder / "client.pem").is_file():
        return settings
    return settings.model_copy(
        update={
            "temporal_tls_ca_file": folder / "ca.pem",
            "temporal_tls_cert_file": folder / "client.pem",
            "temporal_tls_key_file": folder / "client-key.pem",
        }
    )


def temporal_connection(settings: Settings) -> TemporalConnection:
    """The connection ``settings`` describe, its certificate files read and checked.

    Raises:
        ConfigurationError: a file cannot be read or holds no usable PEM, the certificate and
            key are not a pair, one of them is set without the other, or TLS is turned off
            while TLS settings are given.
    """
    s = settings
    own = (s.temporal_tls_ca_file, s.temporal_tls_cert_file, s.temporal_tls_key_file)
    if s.topology == "cluster" and s.temporal_tls is None and not any(own):
        s = _run_certificates(s)
    api_key = s.temporal_api_key.get_secret_value() if s.temporal_api_key else None
    given = {
        _CA: s.temporal_tls_ca_file,
        _CERT: s.temporal_tls_cert_file,
        _KEY: s.temporal_tls_key_file,
        "SAGA_TEMPORAL_TLS_SERVER_NAME": s.temporal_tls_server_name,
        "SAGA_TEMPORAL_API_KEY": api_key,
    }
    named = tuple(name for name, value in given.items() if value)
    if s.temporal_tls is False:
        if named:
            raise ConfigurationError(
                f"SAGA_TEMPORAL_TLS=false but {', '.join(named)} set: these need TLS; "
                "unset SAGA_TEMPORAL_TLS (TLS follows from them) or unset them"
            )
        return TemporalConnection(s.temporal_address)
    if not named and not s.temporal_tls:
        return TemporalConnection(s.temporal_address)
    if bool(s.temporal_tls_cert_file) != bool(s.temporal_tls_key_file):
        missing = _KEY if s.temporal_tls_cert_file else _CERT
        raise ConfigurationError(
            f"mTLS to Temporal needs both {_CERT} and {_KEY}: set {missing} too, or unset both"
        )
    ca = _read_certificate(_CA, s.temporal_tls_ca_file)
    cert = _read_certificate(_CERT, s.temporal_tls_cert_file)
    key = _read_key(_KEY, s.temporal_tls_key_file)
    if cert is not None and key is not None:
        _check_pair(cert, key)
    tls = TLSConfig(
        server_root_ca_cert=ca,
        domain=s.temporal_tls_server_name or None,
        client_cert=cert,
        client_private_key=key,
    )
    return TemporalConnection(s.temporal_address, tls, api_key)


def _read(setting: str, path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(
            f"{setting}={path}: cannot read it ({exc.strerror or exc}): point it at a readable "
            "PEM file, or unset it"
        ) from None


def _read_certificate(setting: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    data = _read(setting, path)
    try:
        x509.load_pem_x509_certificates(data)
    except ValueError:
        raise ConfigurationError(
            f"{setting}={path}: no PEM certificate in it (-----BEGIN CERTIFICATE-----): point "
            "it at the certificate itself, not its key or a DER file"
        ) from None
    return data


def _read_key(setting: str, path: Path | None) -> bytes | None:
    if path is None:
        return None
    data = _read(setting, path)
    try:
        serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise ConfigurationError(
            f"{setting}={path}: no unencrypted PEM private key in it: point it at the "
            "client certificate's key (PKCS#8, PKCS#1 or SEC1, without a passphrase)"
        ) from None
    return data


def _check_pair(cert_pem: bytes, key_pem: bytes) -> None:
    cert = x509.load_pem_x509_certificates(cert_pem)[0]
    key = serialization.load_pem_private_key(key_pem, password=None)
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    encoding = serialization.Encoding.DER
    if cert.public_key().public_bytes(encoding, public) != key.public_key().public_bytes(
        encoding, public
    ):
        raise ConfigurationError(
            f"{_KEY} is not the key of {_CERT} (their public keys differ): set the pair "
            "that was issued together"
        )
