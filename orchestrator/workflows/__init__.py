"""Temporal workflows of the orchestrator (workflow code only: no I/O, no settings)."""

from orchestrator.workflows.order_saga import ORDER_SAGA, OrderSaga, Steps
from orchestrator.workflows.return_saga import RETURN_SAGA, ReturnSaga, ReturnSteps

__all__ = ["ORDER_SAGA", "RETURN_SAGA", "OrderSaga", "ReturnSaga", "ReturnSteps", "Steps"]
