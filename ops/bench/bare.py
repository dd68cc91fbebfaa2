"""The bare ceiling: a workflow shaped like the order saga whose activities do nothing.

Five activities in sequence on four task queues, as the saga's forward path (place order
and complete order on the orchestrator's queue, then one each on payment, inventory and
shipping), with a timer standing for the carrier's dispatch delay where the saga waits for
``shipping.dispatched``. Workflow code only: the standard library and ``temporalio``.
"""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta

from temporalio import activity, workflow

__all__ = [
    "BARE_ACTIVITIES",
    "BARE_SAGA_WORKFLOW",
    "BareSaga",
    "BareSagaInput",
    "BareSagaResult",
    "BareStep",
    "bare_activity",
]

BARE_SAGA_WORKFLOW = "BenchBareSaga"


@dataclass(frozen=True)
class BareStep:
    """One no-op activity of the bare saga and the task queue it runs on."""

    activity: str
    task_queue: str


@dataclass(frozen=True)
class BareSagaInput:
    """The run's queues (unique per bench run) and how long the carrier takes."""

    order_id: str
    steps_before_dispatch: list[BareStep]
    steps_after_dispatch: list[BareStep]
    dispatch_wait_seconds: float


@dataclass(frozen=True)
class BareSagaResult:
    """How many activities ran."""

    order_id: str
    activities: int


BARE_ACTIVITIES = (
    "bench.place_order",
    "bench.charge_payment",
    "bench.reserve_stock",
    "bench.schedule_shipment",
    "bench.complete_order",
)
"""The no-op activities, in the saga's forward order."""


def bare_activity(name: str) -> Callable[[str], Awaitable[str]]:
    """A registered activity called ``name`` that returns its input at once."""

    @activity.defn(name=name)
    async def no_op(order_id: str) -> str:
        return order_id

    return no_op


@workflow.defn(name=BARE_SAGA_WORKFLOW)
class BareSaga:
    """Five no-op activities in sequence, with the carrier's delay as a timer."""

    @workflow.run
    async def run(self, saga_input: BareSagaInput) -> BareSagaResult:
        """Run the steps, wait for the "carrier", run the last step."""
        ran = 0
        for step in saga_input.steps_before_dispatch:
            await self._call(step, saga_input.order_id)
            ran += 1
        if saga_input.dispatch_wait_seconds > 0:
            await workflow.sleep(saga_input.dispatch_wait_seconds)
        for step in saga_input.steps_after_dispatch:
            await self._call(step, saga_input.order_id)
            ran += 1
        return BareSagaResult(order_id=saga_input.order_id, activities=ran)

    @staticmethod
    async def _call(step: BareStep, order_id: str) -> None:
        await workflow.execute_activity(
            step.activity,
            order_id,
            task_queue=step.task_queue,
            start_to_close_timeout=timedelta(seconds=30),
            result_type=str,
        )
