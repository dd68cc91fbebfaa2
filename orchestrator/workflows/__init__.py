"""Temporal workflows of the orchestrator (workflow code only: no I/O, no settings)."""

from orchestrator.workflows.order_saga import ORDER_SAGA, OrderSaga, Steps

__all__ = ["ORDER_SAGA", "OrderSaga", "Steps"]
