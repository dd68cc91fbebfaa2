"""The payment service process: its composition root."""

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from contracts.task_queues import PAYMENT
from infra.settings import Settings
from workers.runtime import run_service

__all__ = ["main"]


def _activities(settings: Settings, registry: CollectorRegistry) -> Sequence[Callable[..., Any]]:
    return []


def main() -> None:
    """Run the payment service until SIGTERM."""
    run_service("payment", task_queue=PAYMENT, activities=_activities)
