"""Incidents on a real store (SQLite and PostgreSQL): each recorded with its event once per
state, however often the saga's local activity is retried; the open ones counted."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client import CollectorRegistry
from temporalio.testing import ActivityEnvironment

from contracts.activities import IncidentKind, IncidentOpened, IncidentResolved
from contracts.codec import decode_event
from contracts.envelope import AnyEvent
from contracts.events.saga import SagaIncidentOpened, SagaIncidentResolved
from contracts.topics import topic_for_event_type
from orchestrator.incidents import IncidentActivities, IncidentBook, IncidentMetrics
from orchestrator.orders import OrderBook
from runtime import Database, Outbox, Where, open_database


class _Store:
    def __init__(self, db: Database) -> None:
        self.db = db
        self.outbox = Outbox(db)
        self.registry = CollectorRegistry()
        self.book = IncidentBook(db, self.outbox, IncidentMetrics(self.registry))
        self.activities = IncidentActivities(self.book)

    def events(self, order_id: str) -> list[AnyEvent]:
        return [
            decode_event(row.value, row.headers) for row in self.outbox.rows_for_order(order_id)
        ]

    def open_gauge(self) -> float | None:
        return self.registry.get_sample_value("saga_incidents_open")


@pytest.fixture
def store(database_at: Callable[[str], Where]) -> Iterator[_Store]:
    db = open_database(database_at("orchestrator"), migrations=[OrderBook.MIGRATIONS])
    yield _Store(db)
    db.close()


def _opened(order_id: str, episode: int = 1) -> IncidentOpened:
    workflow_id = f"order-{order_id}"
    return IncidentOpened(
        incident_id=f"{workflow_id}/refund_payment/{episode}",
        saga_type="OrderSaga",
        workflow_id=workflow_id,
        order_id=order_id,
        step="refund_payment",
        compensating=True,
        kind=IncidentKind.COMPENSATION_FAILING,
        attempts=5,
        last_error="RefundFailed: the issuer refused",
        opened_at=datetime(2026, 12, 6, 2, 14, 31, tzinfo=UTC),
    )


def _resolved(opened: IncidentOpened) -> IncidentResolved:
    return IncidentResolved(
        incident_id=opened.incident_id,
        saga_type=opened.saga_type,
        workflow_id=opened.workflow_id,
        order_id=opened.order_id,
        step=opened.step,
        resolution="resolved-manually by ops: refunded by bank transfer",
        resolved_at=datetime(2026, 12, 6, 2, 31, 2, tzinfo=UTC),
    )


async def test_an_incident_is_opened_once_with_its_event_however_often_it_is_asked(
    store: _Store,
) -> None:
    env = ActivityEnvironment()
    opened = _opened("o-inc-1")

    first = await env.run(store.activities.open, opened)
    again = await env.run(store.activities.open, opened)

    assert (first.incident_id, first.recorded) == (opened.incident_id, True)
    assert (again.incident_id, again.recorded) == (opened.incident_id, False)
    events = store.events("o-inc-1")
    assert [e.event_type for e in events] == [SagaIncidentOpened.EVENT_TYPE]
    event = events[0]
    assert isinstance(event, SagaIncidentOpened)
    assert event.correlation_id == "o-inc-1"
    assert event.data.incident_id == "order-o-inc-1/refund_payment/1"
    assert event.data.kind == "compensation-failing"
    assert event.data.compensating is True
    assert event.data.attempts == 5
    assert event.data.opened_at == "2026-12-06T02:14:31+00:00"
    assert store.outbox.rows_for_order("o-inc-1")[0].topic == topic_for_event_type(
        SagaIncidentOpened.EVENT_TYPE
    )
    assert store.open_gauge() == 1


async def test_an_incident_is_resolved_once_and_leaves_the_open_count(store: _Store) -> None:
    env = ActivityEnvironment()
    opened = _opened("o-inc-2")
    await env.run(store.activities.open, opened)
    await env.run(store.activities.open, _opened("o-inc-3"))
    assert store.open_gauge() == 2

    first = await env.run(store.activities.resolve, _resolved(opened))
    again = await env.run(store.activities.resolve, _resolved(opened))

    assert (first.recorded, again.recorded) == (True, False)
    assert [e.event_type for e in store.events("o-inc-2")] == [
        SagaIncidentOpened.EVENT_TYPE,
        SagaIncidentResolved.EVENT_TYPE,
    ]
    resolved = store.events("o-inc-2")[1]
    assert isinstance(resolved, SagaIncidentResolved)
    assert resolved.data.incident_id == opened.incident_id
    assert resolved.data.resolution.startswith("resolved-manually by ops")
    assert store.open_gauge() == 1
    # Re-opening a resolved incident (a late retry of incident.open) changes nothing.
    reopened = await env.run(store.activities.open, opened)
    assert reopened.recorded is False
    assert len(store.events("o-inc-2")) == 2
    assert store.open_gauge() == 1


async def test_the_next_episode_of_a_step_is_an_incident_of_its_own(store: _Store) -> None:
    env = ActivityEnvironment()
    first = _opened("o-inc-4", episode=1)
    await env.run(store.activities.open, first)
    await env.run(store.activities.resolve, _resolved(first))

    second = await env.run(store.activities.open, _opened("o-inc-4", episode=2))

    assert second.recorded is True
    assert [e.event_type for e in store.events("o-inc-4")] == [
        SagaIncidentOpened.EVENT_TYPE,
        SagaIncidentResolved.EVENT_TYPE,
        SagaIncidentOpened.EVENT_TYPE,
    ]
    assert store.open_gauge() == 1


async def test_resolving_an_incident_never_opened_records_nothing(store: _Store) -> None:
    answer = await ActivityEnvironment().run(
        store.activities.resolve, _resolved(_opened("o-inc-5"))
    )

    assert answer.recorded is False
    assert store.events("o-inc-5") == []
