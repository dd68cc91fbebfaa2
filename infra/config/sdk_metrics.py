"""The Temporal SDK's own metrics (polls, task slots, requests, latencies) on a port per process.

Each process that talks to Temporal builds one :class:`temporalio.runtime.Runtime` whose
Prometheus exporter listens on 127.0.0.1 at the process's port plus
``SAGA_SDK_METRICS_PORT_OFFSET`` (:meth:`infra.config.settings.Settings.sdk_metrics_port`), and
hands it to its Temporal client; the workers of that client report through it too.
"""

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from infra.config.logs import temporal_core_logging
from infra.config.settings import ConfigurationError, Settings

__all__ = ["SDK_METRICS_HOST", "sdk_metrics_runtime"]

SDK_METRICS_HOST = "127.0.0.1"


def sdk_metrics_runtime(settings: Settings, process: str) -> Runtime | None:
    """A Temporal runtime exporting the SDK's metrics for ``process``; None when they are off.

    Counters end in ``_total`` and durations are in seconds, as Prometheus names them.

    Raises:
        ConfigurationError: the port is out of range or already taken.
    """
    port = settings.sdk_metrics_port(process)
    if port is None:
        return None
    if port > 65535:
        raise ConfigurationError(
            f"the Temporal SDK metrics port of {process} would be {port}: lower "
            "SAGA_SDK_METRICS_PORT_OFFSET (0 turns these metrics off)"
        )
    address = f"{SDK_METRICS_HOST}:{port}"
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                logging=temporal_core_logging(),
                metrics=PrometheusConfig(
                    bind_address=address, counters_total_suffix=True, durations_as_seconds=True
                ),
            )
        )
    except ValueError as exc:  # the exporter could not bind
        raise ConfigurationError(
            f"cannot serve the Temporal SDK metrics of {process} on {address} ({exc}): stop "
            "what uses that port, or change SAGA_SDK_METRICS_PORT_OFFSET (0 turns them off)"
        ) from None
