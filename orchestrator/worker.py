"""The orchestrator's worker process: ``OrderSaga`` and ``ReturnSaga``, the order and return
activities, and its consumers.

Beside the Temporal worker on the orchestrator's task queue it runs, each as its own
consumer group with its own database connection:

- the projector, which keeps every order's event timeline for the API;
- the dispatch bridge, which turns ``shipping.dispatched`` and ``shipping.return_received``
  into the sagas' signals;
- the audit consumer and the notification consumer (choreography: nobody calls them);
- with ``SAGA_INCIDENT_WEBHOOK_URL`` set, the incident webhook, which POSTs each incident
  event, signed (:mod:`orchestrator.incident_webhook`).

The sagas' incidents are recorded by the ``incident.open`` / ``incident.resolve`` local
activities (:mod:`orchestrator.incidents`), registered here beside the workflows.

It also keeps the saga metrics (:mod:`orchestrator.metrics`) and the Kafka cluster's
figures (:mod:`orchestrator.cluster_metrics`) on its ``/metrics``.

Copies of the worker (``saga up --scale orchestrator=N``) share the task queue, the
databases and the consumer groups, whose partitions Kafka splits between them; each inbox
drops an event a copy handled already. The saga counters count what each copy did, so they
add up across copies; the cluster and in-flight figures are read (never written) by every
copy alike, so they are aggregated with ``max``, not ``sum``.
"""

from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from contracts.envelope import AnyEvent
from contracts.events.saga import SagaIncidentOpened
from contracts.task_queues import ORCHESTRATOR
from contracts.topics import TOPICS, topic_for_event_type
from infra.config.kafka import kafka_connection
from orchestrator.choreography import AuditLog, Notifications
from orchestrator.cluster_metrics import KafkaClusterMetrics, KafkaClusterWatch
from orchestrator.dispatch_bridge import DispatchBridge
from orchestrator.incident_webhook import IncidentWebhook, WebhookConfig, webhook_config
from orchestrator.incidents import IncidentActivities, IncidentBook, IncidentMetrics
from orchestrator.metrics import SagaMetrics, SagaWatch
from orchestrator.orders import OrderActivities, OrderBook
from orchestrator.queries import database_path
from orchestrator.returns import ReturnActivities, ReturnBook
from orchestrator.timeline import Timeline
from orchestrator.workflows import OrderSaga, ReturnSaga
from runtime import (
    Database,
    EventConsumer,
    EventHandler,
    RetryPolicy,
    ServiceContext,
    ServiceParts,
    new_consumer,
    new_producer,
    open_store,
    run_service,
)

__all__ = ["build", "main"]

_ALL_TOPICS = [spec.name for spec in TOPICS]


def build(context: ServiceContext) -> ServiceParts:
    """The orchestrator's workflow, activities and consumers."""
    settings = context.settings
    saga_metrics = SagaMetrics(context.registry)
    orders = OrderActivities(OrderBook(context.db, context.outbox, saga_metrics))
    returns = ReturnActivities(ReturnBook(context.db, context.outbox))
    incident_book = IncidentBook(context.db, context.outbox, IncidentMetrics(context.registry))
    incidents = IncidentActivities(incident_book)
    webhook = webhook_config(settings)  # refuses a URL without a secret before anything runs

    kafka = kafka_connection(settings)

    def consumer(
        group: str,
        topics: list[str],
        db: Database,
        handler: EventHandler,
        retry: RetryPolicy | None = None,
        max_poll_records: int | None = None,
    ) -> EventConsumer:
        options = {} if max_poll_records is None else {"max_poll_records": max_poll_records}
        return EventConsumer(
            group_id=group,
            topics=topics,
            handler=handler,
            database=db,
            consumer_factory=lambda group_id: new_consumer(kafka, group_id, **options),
            producer_factory=lambda: new_producer(kafka),
            metrics=context.metrics,
            schemas=context.schemas,
            retry=retry,
        )

    # One store (a SQLite file, a PostgreSQL schema) per consumer whose handler awaits inside
    # its transaction: a writer's wait for another (SQLite's busy wait, PostgreSQL's lock)
    # blocks the whole event loop, so two such writers on one store in one process would wait
    # for each other with the loop frozen (the bridge awaits a Temporal signal).
    def store(name: str, migrations: tuple[Path, ...] = ()) -> Database:
        sqlite_file = settings.run_dir / f"{name}.db"
        schema = name.replace("-", "_")
        return open_store(
            settings, "orchestrator", sqlite_file, migrations=migrations, schema=schema
        )

    projector_db = open_store(
        settings,
        "orchestrator",
        database_path(settings.run_dir),
        migrations=[OrderBook.MIGRATIONS],
    )
    bridge_db = store("dispatch-bridge")
    audit_db = store("audit", (AuditLog.MIGRATIONS,))
    notifications_db = store("notifications", (Notifications.MIGRATIONS,))
    timeline = Timeline(projector_db)

    async def project(event: AnyEvent, db: Database) -> None:
        await timeline.project(event, db)
        # The projector's inbox hands it each event once: the place to count compensations.
        saga_metrics.observe_event(event)

    consumers = [
        consumer("orchestrator-projector", _ALL_TOPICS, projector_db, project),
        consumer(
            "orchestrator-dispatch-bridge",
            [topic_for_event_type("shipping.dispatched.v1")],
            bridge_db,
            DispatchBridge(context.temporal).on_event,
        ),
        consumer("audit", _ALL_TOPICS, audit_db, AuditLog(audit_db).append),
        consumer(
            "notifications",
            [topic_for_event_type("order.completed.v1")],
            notifications_db,
            Notifications(notifications_db).notify,
        ),
    ]
    background = [c.run for c in consumers]
    if webhook is not None:
        background.append(
            _webhook_consumer(
                webhook, store("incident-webhook", (IncidentWebhook.MIGRATIONS,)), consumer
            )
        )
    return ServiceParts(
        # Both sagas run the order service's own steps as local activities, which only the
        # worker that runs the workflows can run: they are registered here, beside them.
        activities=[
            orders.place,
            orders.complete,
            orders.cancel,
            returns.authorize,
            returns.expire,
            returns.complete,
            incidents.open,
            incidents.resolve,
        ],
        workflows=[OrderSaga, ReturnSaga],
        deterministic_modules=["orchestrator.workflows", "orchestrator.saga", "contracts"],
        background=[
            *background,
            incident_book.watch,
            KafkaClusterWatch(kafka, KafkaClusterMetrics(context.registry)).run,
            SagaWatch(
                context.temporal,
                saga_metrics,
                interval=settings.saga_watch_interval_seconds,
                min_age=timedelta(seconds=settings.saga_watch_min_age_seconds),
            ).run,
        ],
    )


def _webhook_consumer(
    config: WebhookConfig,
    db: Database,
    consumer: Callable[..., EventConsumer],
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The incident webhook's consumer, with the HTTP client it POSTs with, as one task."""

    async def run() -> None:
        async with httpx.AsyncClient() as client:
            await consumer(
                "incident-webhook",
                [topic_for_event_type(SagaIncidentOpened.EVENT_TYPE)],
                db,
                IncidentWebhook(config, client).deliver,
                config.retry,
                # One record per poll: a receiver that is down holds each incident event for
                # up to its attempts' time (bounded by the settings), and Kafka drops a member
                # that does not poll within 5 minutes; other records come from the local buffer.
                max_poll_records=1,
            ).run()

    return run


def main() -> None:
    """Run the orchestrator's worker until SIGTERM."""
    run_service(
        "orchestrator",
        task_queue=ORCHESTRATOR,
        database=database_path,
        migrations=OrderBook.MIGRATIONS,
        build=build,
    )


if __name__ == "__main__":
    main()
