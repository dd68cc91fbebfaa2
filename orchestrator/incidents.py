"""Incidents: the sagas' record of steps that need a person, in the orchestrator's store.

A saga opens one incident per stuck episode of a step (``incident.open``) and resolves it
when the episode ends (``incident.resolve``); both are local activities of the saga's own
worker. Each records the incident in the ``incidents`` table and writes its event
(``saga.incident_opened`` / ``saga.incident_resolved``) to the outbox in the same
transaction. Both are idempotent by incident id (``<workflow id>/<step>/<episode>``): a
repeated call answers ``recorded=False`` and writes nothing, so each incident is on Kafka
once per state. The ``saga_incidents_open`` gauge counts the open ones, read from the table
after every change and every 15 s (other copies of the worker change it too).
"""

import asyncio
import time

from prometheus_client import CollectorRegistry, Gauge
from temporalio import activity

from contracts.activities import (
    OPEN_INCIDENT,
    RESOLVE_INCIDENT,
    IncidentOpened,
    IncidentRecorded,
    IncidentResolved,
)
from contracts.events.saga import SagaIncidentOpenedData, SagaIncidentResolvedData
from runtime import Book, Database, DomainEvents, Outbox, causation_id

__all__ = ["SOURCE", "IncidentActivities", "IncidentBook", "IncidentMetrics"]

SOURCE = "orchestrator"
"""The ``source`` of the incident events."""

_REFRESH_SECONDS = 15.0


class IncidentMetrics:
    """``saga_incidents_open``: incidents opened and not resolved yet, in the whole store."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.open = Gauge(
            "saga_incidents_open",
            "Incidents the sagas opened and have not resolved yet (stuck or parked steps, "
            "failing compensations).",
            registry=registry,
        )


class IncidentBook(Book):
    """The ``incidents`` table of the orchestrator's store (its ``orders`` migrations)."""

    def __init__(
        self, connection: Database, outbox: Outbox, metrics: IncidentMetrics | None = None
    ) -> None:
        super().__init__(connection)
        self._events = DomainEvents(outbox, SOURCE)
        self._metrics = metrics

    def open(self, incident: IncidentOpened, cause: str | None) -> bool:
        """Record the incident and write ``saga.incident_opened``; False if recorded before."""
        return self._record(
            "INSERT INTO incidents (incident_id, order_id, saga_type, workflow_id, step,"
            " compensating, kind, attempts, last_error, opened_at, recorded_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (
                incident.incident_id,
                incident.order_id,
                incident.saga_type,
                incident.workflow_id,
                incident.step,
                incident.compensating,
                incident.kind.value,
                incident.attempts,
                incident.last_error,
                incident.opened_at.isoformat(),
                time.time(),
            ),
            SagaIncidentOpenedData(
                order_id=incident.order_id,
                incident_id=incident.incident_id,
                saga_type=incident.saga_type,
                workflow_id=incident.workflow_id,
                step=incident.step,
                compensating=incident.compensating,
                kind=incident.kind.value,
                attempts=incident.attempts,
                last_error=incident.last_error,
                opened_at=incident.opened_at.isoformat(),
            ),
            cause,
        )

    def resolve(self, incident: IncidentResolved, cause: str | None) -> bool:
        """Close the open incident and write ``saga.incident_resolved``; False if it was
        closed before (or never opened: nothing to resolve)."""
        return self._record(
            "UPDATE incidents SET resolution = ?, resolved_at = ?, closed_at = ?"
            " WHERE incident_id = ? AND closed_at IS NULL",
            (
                incident.resolution,
                incident.resolved_at.isoformat(),
                time.time(),
                incident.incident_id,
            ),
            SagaIncidentResolvedData(
                order_id=incident.order_id,
                incident_id=incident.incident_id,
                saga_type=incident.saga_type,
                workflow_id=incident.workflow_id,
                step=incident.step,
                resolution=incident.resolution,
                resolved_at=incident.resolved_at.isoformat(),
            ),
            cause,
        )

    def _record(
        self,
        sql: str,
        parameters: tuple[object, ...],
        event: SagaIncidentOpenedData | SagaIncidentResolvedData,
        cause: str | None,
    ) -> bool:
        """Change the table with ``sql`` and, if a row changed, write ``event`` to the outbox in
        the same transaction; False if no row changed (this state was recorded before)."""
        with self.transaction():
            changed = self._db.execute(sql, parameters).rowcount > 0
            if changed:
                self._events.emit(event, caused_by=cause)
        self.refresh_metrics()
        return changed

    def open_count(self) -> int:
        """How many incidents are open, in the whole store."""
        row = self._db.execute("SELECT COUNT(*) FROM incidents WHERE closed_at IS NULL").fetchone()
        return int(row[0])

    def refresh_metrics(self) -> None:
        """Set ``saga_incidents_open`` from the table."""
        if self._metrics is not None:
            self._metrics.open.set(self.open_count())

    async def watch(self) -> None:
        """Keep ``saga_incidents_open`` current while other copies change the table."""
        while True:
            self.refresh_metrics()
            await asyncio.sleep(_REFRESH_SECONDS)


class IncidentActivities:
    """``incident.open`` and ``incident.resolve``, local activities of the sagas' worker."""

    def __init__(self, book: IncidentBook) -> None:
        self._book = book

    @activity.defn(name=OPEN_INCIDENT)
    async def open(self, incident: IncidentOpened) -> IncidentRecorded:
        """Record the incident and emit ``saga.incident_opened``, once."""
        return IncidentRecorded(
            incident_id=incident.incident_id,
            recorded=self._book.open(incident, causation_id()),
        )

    @activity.defn(name=RESOLVE_INCIDENT)
    async def resolve(self, incident: IncidentResolved) -> IncidentRecorded:
        """Close the incident and emit ``saga.incident_resolved``, once."""
        return IncidentRecorded(
            incident_id=incident.incident_id,
            recorded=self._book.resolve(incident, causation_id()),
        )
