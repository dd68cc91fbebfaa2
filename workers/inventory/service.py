"""The inventory service process: its composition root."""

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry

from contracts.task_queues import INVENTORY
from infra.settings import Settings
from workers.runtime import run_service

__all__ = ["main"]


def _activities(settings: Settings, registry: CollectorRegistry) -> Sequence[Callable[..., Any]]:
    return []


def main() -> None:
    """Run the inventory service until SIGTERM."""
    run_service("inventory", task_queue=INVENTORY, activities=_activities)
