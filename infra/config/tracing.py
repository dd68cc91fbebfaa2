"""OpenTelemetry tracing of a process: off unless an OTLP endpoint is set.

With ``SAGA_OTLP_ENDPOINT`` set, a process sends its spans over OTLP/HTTP (protobuf) to
``<endpoint>/v1/traces`` under its own ``service.name``. Its Temporal client carries
Temporal's tracing interceptor, so the trace goes from the client call into the workflow and
from the workflow into each activity, whichever process runs them; Kafka records carry it in
their headers (:mod:`runtime._tracing`).
"""

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from temporalio.client import Interceptor
from temporalio.contrib.opentelemetry import TracingInterceptor
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

__all__ = ["export_traces", "temporal_interceptors", "traced_workflow_runner"]

# Spans wait at most this long in the process before they are sent: long enough to batch a
# busy process's spans, short enough that a trace is complete soon after its saga.
_EXPORT_DELAY_MILLIS = 1000


@contextlib.contextmanager
def export_traces(service_name: str, endpoint: str | None) -> Iterator[None]:
    """Send this process's spans to ``endpoint`` until the block ends, then flush them.

    Without an endpoint nothing is set up and every span is a no-op.
    """
    if endpoint is None:
        yield
        return
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
    provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces"),
            schedule_delay_millis=_EXPORT_DELAY_MILLIS,
        )
    )
    trace.set_tracer_provider(provider)
    try:
        yield
    finally:
        provider.shutdown()


def temporal_interceptors(endpoint: str | None) -> Sequence[Interceptor]:
    """The interceptors of a Temporal client: Temporal's tracing one when traces are on.

    On a client, the interceptor also applies to the workers made with it: their workflows
    and activities continue the trace of whoever started or signalled them.
    """
    return [] if endpoint is None else [TracingInterceptor()]


def traced_workflow_runner(
    runner: WorkflowRunner | None = None, *, passthrough: Sequence[str] = ()
) -> WorkflowRunner:
    """The workflow sandbox, with OpenTelemetry and ``passthrough`` passed through it.

    The tracing interceptor's workflow side runs inside the sandbox; OpenTelemetry's context
    must be the process's own, not a copy re-imported for each workflow run.
    """
    runner = runner or SandboxedWorkflowRunner()
    if not isinstance(runner, SandboxedWorkflowRunner):
        return runner
    return dataclasses.replace(
        runner,
        restrictions=runner.restrictions.with_passthrough_modules("opentelemetry", *passthrough),
    )
