"""Temporal task queues: one per service that owns data, one for the orchestrator."""

__all__ = ["INVENTORY", "ORCHESTRATOR", "PAYMENT", "SHIPPING"]

ORCHESTRATOR = "orchestrator"
PAYMENT = "payment"
INVENTORY = "inventory"
SHIPPING = "shipping"
