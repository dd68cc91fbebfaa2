"""Which failures to reach Temporal end the wait at once, and what the line says.

The texts are the Python SDK's own (its core's), as measured against Temporal's full server
with mTLS on its frontend (``tests/system/infra/test_temporal_full_server.py`` shows them on
the real server).
"""

import pytest
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from infra.config.settings import ConfigurationError
from infra.config.temporal import TemporalConnection
from runtime._temporal import _raise_if_refused

_CONNECT = "Failed client connect: "
UNKNOWN_ISSUER = _CONNECT + (
    "Server connection error: tonic::transport::Error(Transport, ConnectError(Custom { kind: "
    "InvalidData, error: InvalidCertificate(UnknownIssuer) }))"
)
WRONG_NAME = _CONNECT + (
    "Server connection error: tonic::transport::Error(Transport, ConnectError(Custom { kind: "
    'InvalidData, error: InvalidCertificate(NotValidForNameContext { expected: DnsName("x"), '
    'presented: ["IpAddress(127.0.0.1)", "DnsName(\\"localhost\\")"] }) }))'
)
CERTIFICATE_REQUIRED = _CONNECT + (
    '`get_system_info` call error after connection: Status { code: Unknown, message: "transport '
    'error", source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Custom { kind: '
    'InvalidData, error: "received fatal alert: CertificateRequired" }))) }'
)
NOT_TLS = _CONNECT + (
    "Server connection error: tonic::transport::Error(Transport, ConnectError(Custom { kind: "
    "InvalidData, error: InvalidMessage(InvalidContentType) }))"
)
BROKEN_PIPE = _CONNECT + (
    '`get_system_info` call error after connection: Status { code: Unknown, message: "transport '
    'error", source: Some(tonic::transport::Error(Transport, hyper::Error(Io, Custom { kind: '
    'BrokenPipe, error: "stream closed because of a broken pipe" }))) }'
)
REFUSED = _CONNECT + (
    'Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError("tcp '
    'connect error", Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))'
)

MTLS = TemporalConnection(
    "127.0.0.1:7233",
    TLSConfig(server_root_ca_cert=b"ca", client_cert=b"c", client_private_key=b"k"),
)
TLS_ONLY = TemporalConnection("127.0.0.1:7233", TLSConfig(server_root_ca_cert=b"ca"))
PLAIN = TemporalConnection("127.0.0.1:7233")


def _check(connection: TemporalConnection, text: str, closings: int = 0) -> str | None:
    """The refusal's line, or None if the wait goes on."""
    error = RuntimeError(text)
    try:
        _raise_if_refused(connection, error, "".join(text.lower().split()), closings)
    except ConfigurationError as refused:
        return str(refused)
    return None


@pytest.mark.parametrize(
    ("text", "meaning", "setting"),
    [
        (UNKNOWN_ISSUER, "not signed by a CA this client trusts", "SAGA_TEMPORAL_TLS_CA_FILE"),
        (WRONG_NAME, "does not name the host dialed", "SAGA_TEMPORAL_TLS_SERVER_NAME"),
        (CERTIFICATE_REQUIRED, "requires a client certificate", "SAGA_TEMPORAL_TLS_CERT_FILE"),
        (NOT_TLS, "does not speak TLS on that port", "SAGA_TEMPORAL_TLS"),
    ],
)
def test_a_failed_handshake_ends_the_wait_naming_the_setting(
    text: str, meaning: str, setting: str
) -> None:
    line = _check(MTLS, text)
    assert line is not None
    assert line.startswith("TLS to Temporal at 127.0.0.1:7233 failed: ")
    assert meaning in line
    assert setting in line
    assert "\n" not in line


def test_a_server_that_is_not_up_is_waited_for() -> None:
    assert _check(MTLS, REFUSED) is None
    assert _check(PLAIN, REFUSED) is None


def test_without_tls_nothing_is_taken_for_a_handshake_failure() -> None:
    assert _check(PLAIN, BROKEN_PIPE, closings=10) is None


def test_a_connection_closed_again_and_again_under_tls_is_a_refusal() -> None:
    """One closed connection may be a restart; three in a row after a handshake are the
    server refusing the client's certificate (or its absence)."""
    assert _check(TLS_ONLY, BROKEN_PIPE, closings=1) is None
    line = _check(TLS_ONLY, BROKEN_PIPE, closings=3)
    assert line is not None
    assert "does it require a client certificate?" in line
    line = _check(MTLS, BROKEN_PIPE, closings=3)
    assert line is not None
    assert "does it refuse this client certificate?" in line


def test_refused_credentials_name_the_api_key() -> None:
    keyed = TemporalConnection("cloud.example:7233", TLSConfig(), api_key="k")
    error = RPCError("Request unauthorized.", RPCStatusCode.UNAUTHENTICATED, b"")
    with pytest.raises(ConfigurationError, match=r"refused this client.*SAGA_TEMPORAL_API_KEY"):
        _raise_if_refused(keyed, error, "", 0)
