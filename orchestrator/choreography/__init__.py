"""Consumers that react to domain events without being called by the saga (choreography)."""

from orchestrator.choreography.audit import AuditLog
from orchestrator.choreography.notifications import Notifications

__all__ = ["AuditLog", "Notifications"]
