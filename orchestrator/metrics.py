"""The sagas' own metrics, in the orchestrator worker.

Each figure is taken where it happens exactly once, however often Temporal retries:

- started, completed and cancelled (with the saga's duration) in the order activities,
  only by the call that changed the order's state (:class:`orchestrator.orders.OrderBook`);
- compensations by step from the undo events (``payment.refunded``, ``inventory.released``,
  ``shipping.cancelled``, ``order.cancelled``), which each service writes once per order and
  the projector sees once per event id (its inbox);
- sagas in flight and flagged stuck from Temporal's visibility store, every 30 s
  (:class:`SagaWatch`).

Step attempts are counted where the activities run (:mod:`workers.activity_metrics`).
"""

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from temporalio.client import Client, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts.activities import (
    ORDER_SAGA_WORKFLOW,
    STATUS_QUERY,
    CancelCause,
    CancelOrderInput,
    SagaPhase,
    SagaStatus,
)
from contracts.envelope import AnyEvent
from contracts.events.inventory import InventoryReleased
from contracts.events.order import OrderCancelled
from contracts.events.payment import PaymentRefunded
from contracts.events.shipping import ShippingCancelled
from orchestrator.saga import SAGA_STATUS_KEY, SAGA_STEP_KEY
from orchestrator.workflows.order_saga import Steps

__all__ = ["COMPENSATED_STEP", "SagaMetrics", "SagaWatch", "cancel_reason"]

log = logging.getLogger(__name__)

COMPENSATED_STEP: dict[str, str] = {
    OrderCancelled.EVENT_TYPE: Steps.PLACE_ORDER,
    PaymentRefunded.EVENT_TYPE: Steps.CHARGE_PAYMENT,
    InventoryReleased.EVENT_TYPE: Steps.RESERVE_STOCK,
    ShippingCancelled.EVENT_TYPE: Steps.SCHEDULE_SHIPMENT,
}
"""The undo event of each compensated step."""

_IN_FLIGHT = (SagaPhase.RUNNING, SagaPhase.COMPENSATING)
_RPC_TIMEOUT = timedelta(seconds=5)


def cancel_reason(request: CancelOrderInput) -> str:
    """The ``reason`` label of a cancelled saga: ``customer``, ``workflow_cancelled``, or
    the step that failed."""
    if request.cause is CancelCause.CANCEL_REQUESTED:
        return "customer"
    if request.cause is CancelCause.WORKFLOW_CANCELLED:
        return "workflow_cancelled"
    return request.failed_step or "unknown"


class SagaMetrics:
    """Saga figures of the orchestrator worker, on the registry it is handed."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "sagas_started_total", "Sagas that recorded their order", registry=registry
        )
        self.completed = Counter(
            "sagas_completed_total", "Sagas that completed their order", registry=registry
        )
        self.cancelled = Counter(
            "sagas_cancelled_total",
            "Sagas that cancelled their order, by reason: the step that failed, or customer",
            ["reason"],
            registry=registry,
        )
        self.duration = Histogram(
            "saga_duration_seconds",
            "From the order recorded to its completion or cancellation",
            ["outcome"],
            buckets=(0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600, 21600, 86400, 172800),
            registry=registry,
        )
        self.compensations = Counter(
            "saga_compensations_total",
            "Completed compensations, by the step they undid",
            ["step"],
            registry=registry,
        )
        self.in_flight = Gauge(
            "sagas_in_flight",
            "Running sagas, going forward (RUNNING) or undoing (COMPENSATING)",
            ["saga_status"],
            registry=registry,
        )
        self.stuck = Gauge(
            "sagas_stuck",
            "Running sagas whose current step (or its compensation) is flagged stuck",
            ["saga_status"],
            registry=registry,
        )
        for phase in _IN_FLIGHT:
            self.in_flight.labels(phase.value)
            self.stuck.labels(phase.value)

    def saga_started(self) -> None:
        """Count a saga whose order was just recorded."""
        self.started.inc()

    def saga_completed(self, seconds: float) -> None:
        """Count a saga whose order was just completed, ``seconds`` after it was recorded."""
        self.completed.inc()
        self.duration.labels("completed").observe(seconds)

    def saga_cancelled(self, reason: str, seconds: float) -> None:
        """Count a saga whose order was just cancelled, ``seconds`` after it was recorded."""
        self.cancelled.labels(reason).inc()
        self.duration.labels("cancelled").observe(seconds)

    def observe_event(self, event: AnyEvent) -> None:
        """Count the compensation an undo event reports (other events count nothing)."""
        step = COMPENSATED_STEP.get(event.event_type)
        if step is not None:
            self.compensations.labels(step).inc()


class SagaWatch:
    """Fills ``sagas_in_flight`` and ``sagas_stuck`` from Temporal every ``interval`` s.

    In flight: two visibility counts. Stuck: only sagas that have run for ``min_age`` and
    are not just waiting for the carrier can have been flagged (five failed attempts take
    15 s or more), so only those are asked for their status (at most ``limit`` a tick).
    """

    def __init__(
        self,
        client: Client,
        metrics: SagaMetrics,
        *,
        interval: float = 30.0,
        min_age: timedelta = timedelta(seconds=60),
        limit: int = 200,
        concurrency: int = 8,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._interval = interval
        self._min_age = min_age
        self._limit = limit
        self._gate = asyncio.Semaphore(concurrency)

    async def run(self) -> None:
        """Refresh until cancelled; a failed refresh is logged and tried again next tick."""
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # noqa: BLE001 - a failed count must not stop the process
                log.warning("cannot count the running sagas: %s", exc)
            await asyncio.sleep(self._interval)

    async def refresh(self) -> None:
        """Count the sagas in flight and the stuck ones now."""
        base = f"WorkflowType = '{ORDER_SAGA_WORKFLOW}' AND ExecutionStatus = 'Running'"
        for phase in _IN_FLIGHT:
            count = await self._client.count_workflows(
                f"{base} AND {SAGA_STATUS_KEY.name} = '{phase.value}'", rpc_timeout=_RPC_TIMEOUT
            )
            self._metrics.in_flight.labels(phase.value).set(count.count)
        before = datetime.now(UTC) - self._min_age
        candidates = [
            execution.id
            async for execution in self._client.list_workflows(
                f"{base} AND StartTime < '{before.isoformat()}' AND "
                f"({SAGA_STATUS_KEY.name} = '{SagaPhase.COMPENSATING.value}' OR "
                f"{SAGA_STEP_KEY.name} != '{Steps.AWAIT_DISPATCH}')",
                limit=self._limit,
                rpc_timeout=_RPC_TIMEOUT,
            )
        ]
        phases = await asyncio.gather(*(self._stuck_phase(id) for id in candidates))
        for phase in _IN_FLIGHT:
            self._metrics.stuck.labels(phase.value).set(sum(1 for p in phases if p is phase))

    async def _stuck_phase(self, workflow_id: str) -> SagaPhase | None:
        """The saga's phase if its current step is flagged stuck, else None."""
        async with self._gate:
            try:
                status: SagaStatus = await self._client.get_workflow_handle(workflow_id).query(
                    STATUS_QUERY, result_type=SagaStatus, rpc_timeout=_RPC_TIMEOUT
                )
            except (WorkflowQueryFailedError, RPCError):
                return None  # ended meanwhile, or no worker answers: not known to be stuck
        current = next((s for s in status.steps if s.name == status.current_step), None)
        return status.status if current is not None and current.stuck else None
