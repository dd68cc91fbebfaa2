"""Connecting to Temporal: wait until the server answers, then hand out the client."""

import asyncio
from collections.abc import Sequence
from datetime import timedelta

from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client, Interceptor
from temporalio.converter import DataConverter
from temporalio.runtime import Runtime
from temporalio.service import RPCError

__all__ = ["TemporalUnavailableError", "wait_for_temporal"]


class TemporalUnavailableError(Exception):
    """Temporal did not answer, or its binary is missing; the message says what to do."""


async def wait_for_temporal(
    address: str,
    namespace: str,
    *,
    wait_seconds: float,
    data_converter: DataConverter | None = None,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Wait until Temporal answers on ``address`` and ``namespace`` exists; return a client.

    ``interceptors`` apply to the client's calls and to the workers made with it (the tracing
    interceptor of :func:`infra.config.tracing.temporal_interceptors`). ``runtime`` is the
    process's Temporal runtime (the one exporting the SDK's metrics,
    :mod:`infra.config.sdk_metrics`).

    Raises:
        TemporalUnavailableError: no answer within ``wait_seconds`` seconds.
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    last_error: BaseException | None = None
    while asyncio.get_running_loop().time() < deadline:
        try:
            client = await Client.connect(
                address,
                namespace=namespace,
                data_converter=data_converter or DataConverter.default,
                interceptors=interceptors,
                runtime=runtime,
            )
            await client.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=5)
            )
        except (RuntimeError, RPCError, OSError) as exc:
            last_error = exc
        else:
            return client
        await asyncio.sleep(0.5)
    raise TemporalUnavailableError(
        f"Temporal at {address} did not answer within {wait_seconds:.0f} s "
        f"({type(last_error).__name__}): start the stack with `saga up`, "
        "or set SAGA_TEMPORAL_ADDRESS to a running server"
    )
