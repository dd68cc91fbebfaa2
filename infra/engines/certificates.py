"""Certificates made for one run: a certificate authority and the leaves it signs.

The secured Kafka broker (:mod:`infra.engines.kafka_security`) and Temporal's full server with
mTLS on its frontend (:mod:`infra.engines.temporal_full`) both take their certificates from
here. The CA's private key is never written: it signs the leaves of one call and is dropped,
so a leaf can only come from a new CA (and every party gets the new CA's certificate).
"""

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = ["IssuedCertificate", "Leaf", "expiring", "make_certificates"]

_VALIDITY = datetime.timedelta(days=365)


@dataclass(frozen=True)
class Leaf:
    """A certificate to issue: its subject's common name and the hosts it serves."""

    common_name: str
    hosts: Sequence[str] = field(default=())
    """IP addresses and DNS names it is valid for as a server; empty for a client only."""


@dataclass(frozen=True)
class IssuedCertificate:
    """One leaf's PEM: its private key (PKCS#8, unencrypted) and its certificate."""

    key_pem: bytes = field(repr=False)
    cert_pem: bytes


def make_certificates(
    ca_common_name: str, leaves: Sequence[Leaf]
) -> tuple[bytes, list[IssuedCertificate]]:
    """A new CA (valid a year) and, signed by it, one certificate per leaf (the same order).

    Every leaf may serve TLS and authenticate as a client (both extended key usages).

    Returns:
        The CA's certificate (PEM) and the leaves' keys and certificates.
    """
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ca_common_name)])
    ca_cert = (
        _certificate(ca_name, ca_name, ca_key.public_key(), now)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    issued = []
    for leaf in leaves:
        key = ec.generate_private_key(ec.SECP256R1())
        builder = _certificate(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, leaf.common_name)]),
            ca_name,
            key.public_key(),
            now,
        )
        if leaf.hosts:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([_general_name(host) for host in leaf.hosts]),
                critical=False,
            )
        cert = (
            builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,  # the only form Kafka's PEM keystore reads
            serialization.NoEncryption(),
        )
        issued.append(IssuedCertificate(key_pem, cert.public_bytes(pem)))
    return ca_cert.public_bytes(pem), issued


def expiring(path: Path, within: datetime.timedelta = datetime.timedelta(days=1)) -> bool:
    """Whether the certificate in ``path`` (PEM) ends within ``within`` from now."""
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < within


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def _certificate(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePublicKey, now: datetime.datetime
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )
