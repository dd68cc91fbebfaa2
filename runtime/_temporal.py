"""Connecting to Temporal: wait until the server answers, then hand out the client."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from infra.config.settings import ConfigurationError
from infra.config.temporal import TemporalConnection

__all__ = ["TemporalUnavailableError", "wait_for_temporal"]


class TemporalUnavailableError(Exception):
    """Temporal did not answer, or its binary is missing; the message says what to do."""


_CA = "SAGA_TEMPORAL_TLS_CA_FILE"
_CERT = "SAGA_TEMPORAL_TLS_CERT_FILE and SAGA_TEMPORAL_TLS_KEY_FILE"
_NAME = "SAGA_TEMPORAL_TLS_SERVER_NAME"

# How the SDK's core words a failed TLS handshake (lower case, without spaces), what it means
# and which settings mend it: waiting longer cannot help, so the first one ends the wait.
_TLS_FAILURES: tuple[tuple[str, str, str], ...] = (
    ("unknownissuer", "its certificate is not signed by a CA this client trusts", _CA),
    ("notvalidforname", "its certificate does not name the host dialed", f"{_NAME} or {_CA}"),
    ("invalidcertificate(expired", "its certificate has expired", _CA),
    ("certificateexpired", "it finds the client certificate expired", _CERT),
    ("certificaterequired", "it requires a client certificate (mTLS)", _CERT),
    ("badcertificate", "it refused the client certificate", _CERT),
    ("unknownca", "it does not trust the CA of the client certificate", _CERT),
    ("invalidcontenttype", "it does not speak TLS on that port", "SAGA_TEMPORAL_TLS"),
    ("invalidcertificate", "its certificate cannot be used", _CA),
)
_CLOSED = ("brokenpipe", "connectionclosed", "connectionreset", "connectionwasnotready")
"""What a server that requires mTLS and refuses the client's certificate (or its absence) may
look like instead of an alert: the client's side of the handshake ends, then its first call
finds the connection closed (or, on busy cores, cancelled: "connection was not ready"). Under
TLS, taken for a refusal when it happens again and again."""
_CLOSINGS_BEFORE_REFUSAL = 3
_REFUSALS = (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED)


async def wait_for_temporal(
    address: str | TemporalConnection,
    namespace: str,
    *,
    wait_seconds: float,
    data_converter: DataConverter | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Wait until Temporal answers on ``address`` and ``namespace`` exists; return a client.

    ``address`` is a plain ``host:port`` (TCP, no credentials) or this process's
    :class:`~infra.config.temporal.TemporalConnection` (TLS, client certificate, API key).
    ``interceptors`` apply to the client's calls and to the workers made with it (the tracing
    interceptor of :func:`infra.config.tracing.temporal_interceptors`). ``runtime`` is the
    process's Temporal runtime (the one exporting the SDK's metrics,
    :mod:`infra.config.sdk_metrics`).

    Raises:
        TemporalUnavailableError: no answer within ``wait_seconds`` seconds.
        ConfigurationError: the TLS handshake failed, or the server refused this client's
            credentials (certificate or API key): the message names the settings to fix.
    """
    connection = address if isinstance(address, TemporalConnection) else TemporalConnection(address)
    deadline = asyncio.get_running_loop().time() + wait_seconds
    last_error: BaseException | None = None
    closings = 0
    while asyncio.get_running_loop().time() < deadline:
        try:
            client = await Client.connect(
                connection.address,
                namespace=namespace,
                api_key=connection.api_key,
                tls=connection.tls or False,
                data_converter=data_converter or DataConverter.default,
                interceptors=interceptors,
                runtime=runtime,
            )
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=5)
            )
        except (RuntimeError, RPCError, OSError) as exc:
            text = "".join(str(exc).lower().split())
            closings = closings + 1 if any(sign in text for sign in _CLOSED) else 0
            _raise_if_refused(connection, exc, text, closings)
            last_error = exc
        else:
            return client
        await asyncio.sleep(0.5)
    hint = (
        "is the server up, and does it speak TLS on that port?"
        if connection.secured
        else "start the stack with `saga up`, or set SAGA_TEMPORAL_ADDRESS to a running server "
        "(one that requires TLS needs SAGA_TEMPORAL_TLS_CA_FILE or SAGA_TEMPORAL_TLS=true)"
    )
    raise TemporalUnavailableError(
        f"Temporal at {connection.address} did not answer within {wait_seconds:.0f} s "
        f"({type(last_error).__name__}): {hint}"
    )


def _raise_if_refused(
    connection: TemporalConnection, error: BaseException, text: str, closings: int
) -> None:
    """Turn a failure that waiting cannot mend into a ConfigurationError naming the settings."""
    tls = connection.tls
    if isinstance(error, RPCError) and error.status in _REFUSALS:
        given = [
            name
            for name, value in (
                ("SAGA_TEMPORAL_API_KEY", connection.api_key),
                (_CERT, tls is not None and tls.client_cert),
            )
            if value
        ]
        which = " or ".join(given) or f"SAGA_TEMPORAL_API_KEY or {_CERT}"
        raise ConfigurationError(
            f"Temporal at {connection.address} refused this client ({error.status.name}: "
            f"{error.message[:160]}): set {which} to credentials it accepts"
        )
    if tls is None:
        return
    failure = next(((m, s) for marker, m, s in _TLS_FAILURES if marker in text), None)
    if failure is None:
        if closings < _CLOSINGS_BEFORE_REFUSAL:
            return
        doubt = (
            "does it refuse this client certificate?"
            if tls.client_cert
            else ("does it require a client certificate?")
        )
        failure = (f"it closed the connection after the handshake ({doubt})", _CERT)
    meaning, settings = failure
    raise ConfigurationError(
        f"TLS to Temporal at {connection.address} failed: {meaning}; check {settings}"
    )
