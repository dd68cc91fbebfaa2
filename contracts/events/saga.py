"""Events of the saga itself, emitted by the orchestrator on its order service's topic.

An incident is opened once per stuck episode of a step and resolved once, when the episode
ends; both events carry the same ``incident_id`` (``<workflow id>/<step>/<episode>``), and
are keyed and correlated by the order id like every event, so they follow the order's own.
"""

from pydantic import Field

from contracts.envelope import Event, EventData

__all__ = [
    "SagaIncidentOpened",
    "SagaIncidentOpenedData",
    "SagaIncidentResolved",
    "SagaIncidentResolvedData",
]


class _IncidentData(EventData):
    """What both incident events carry: which step of which saga."""

    incident_id: str = Field(min_length=1)
    saga_type: str = Field(min_length=1)
    workflow_id: str = Field(min_length=1)
    step: str = Field(min_length=1)


class SagaIncidentOpenedData(_IncidentData):
    """A step is stuck or parked, or a compensation keeps failing: someone should look."""

    compensating: bool
    kind: str = Field(min_length=1)
    """A ``contracts.IncidentKind``; kept a string so readers accept kinds added later."""
    attempts: int = Field(ge=0)
    last_error: str | None = None
    opened_at: str = Field(min_length=1)
    """ISO 8601, UTC: the saga's (workflow) time when it opened the incident."""


class SagaIncidentOpened(Event[SagaIncidentOpenedData]):
    EVENT_TYPE = "saga.incident_opened.v1"


class SagaIncidentResolvedData(_IncidentData):
    """The incident's episode ended: recovered, resolved by hand, turned back, or saga ended."""

    resolution: str = Field(min_length=1)
    resolved_at: str = Field(min_length=1)
    """ISO 8601, UTC: the saga's (workflow) time when the episode ended."""


class SagaIncidentResolved(Event[SagaIncidentResolvedData]):
    EVENT_TYPE = "saga.incident_resolved.v1"
