"""Every attempt of a saga step's activity, counted where it runs, by how it ended.

Temporal retries an activity by running it again, so each run is one attempt; the
interceptor counts them in the worker process that runs them (payment, inventory,
shipping, orchestrator), forward steps and compensations alike.
"""

import asyncio
from typing import Any

from prometheus_client import CollectorRegistry, Counter
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

__all__ = ["ActivityAttempts", "ActivityMetrics"]


class ActivityMetrics:
    """``saga_step_attempts_total{activity,outcome}`` of one process."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter(
            "saga_step_attempts_total",
            "Attempts of the saga's activities (steps and compensations), by how each ended: "
            "succeeded, refused (a business refusal, not retried), failed (retried), cancelled",
            ["activity", "outcome"],
            registry=registry,
        )


def _outcome(error: BaseException | None) -> str:
    if error is None:
        return "succeeded"
    if isinstance(error, asyncio.CancelledError):
        return "cancelled"
    if isinstance(error, ApplicationError) and error.non_retryable:
        return "refused"
    return "failed"


class _CountingInbound(ActivityInboundInterceptor):
    def __init__(
        self, next: ActivityInboundInterceptor, metrics: ActivityMetrics, skip: frozenset[str]
    ) -> None:
        super().__init__(next)
        self._metrics = metrics
        self._skip = skip

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        name = activity.info().activity_type
        if name in self._skip:
            return await super().execute_activity(input)
        error: BaseException | None = None
        try:
            return await super().execute_activity(input)
        except BaseException as exc:
            error = exc
            raise
        finally:
            self._metrics.attempts.labels(name, _outcome(error)).inc()


class ActivityAttempts(Interceptor):
    """The worker interceptor that counts attempts; activities named in ``skip`` are not
    counted (the health ``<service>.ping``)."""

    def __init__(self, metrics: ActivityMetrics, *, skip: frozenset[str] = frozenset()) -> None:
        self._metrics = metrics
        self._skip = skip

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _CountingInbound(next, self._metrics, self._skip)
