"""What every saga workflow on the library offers operators: retry a stuck step now, settle
it by hand, and, once the saga has ended, how it ended in the memo.

A saga workflow inherits :class:`OperatedSaga` and keeps its :class:`SagaRunner` in
``self._runner``; the updates are Temporal's (``RETRY_NOW_UPDATE``,
``RESOLVE_MANUALLY_UPDATE``), each validated before it is accepted, so a request for a step
that is not stuck is refused without a history event.
"""

from typing import Any

from temporalio import workflow

from contracts.activities import (
    RESOLVE_MANUALLY_UPDATE,
    RETRY_NOW_UPDATE,
    OperatorActionResult,
    ResolveManuallyRequest,
    RetryNowRequest,
    SagaPhase,
)
from orchestrator.saga.runner import SagaRunner

__all__ = ["OperatedSaga"]


class OperatedSaga:
    """The operator updates and the outcome memo of a saga workflow."""

    _runner: SagaRunner[Any]

    @workflow.update(name=RETRY_NOW_UPDATE)
    def retry_now(self, request: RetryNowRequest) -> OperatorActionResult:
        """Try a stuck step or compensation again now instead of after its backoff."""
        detail = self._runner.retry_now(request.step, request.operator, request.reason)
        return OperatorActionResult(step=request.step, detail=detail)

    @retry_now.validator
    def _validate_retry_now(self, request: RetryNowRequest) -> None:
        self._runner.check_stuck(request.step)

    @workflow.update(name=RESOLVE_MANUALLY_UPDATE)
    def resolve_manually(self, request: ResolveManuallyRequest) -> OperatorActionResult:
        """Record that an operator settled a stuck step by hand, so the saga goes on."""
        detail = self._runner.resolve_manually(request.step, request.reason, request.operator)
        return OperatorActionResult(step=request.step, detail=detail)

    @resolve_manually.validator
    def _validate_resolve_manually(self, request: ResolveManuallyRequest) -> None:
        self._runner.check_stuck(request.step)

    def _outcome_memo(self) -> dict[str, Any] | None:
        """How the saga ended (``saga_status``, ``failure_reason``, ``failed_step``), for the
        memo, readable in lists without a worker; None while it has not ended."""
        if self._runner.phase not in (SagaPhase.COMPLETED, SagaPhase.CANCELLED):
            return None
        failure = self._runner.failure
        return {
            "saga_status": self._runner.status,
            "failure_reason": failure.reason if failure else None,
            "failed_step": failure.step if failure else None,
        }
