"""The service runtime: what every service process shares.

A service keeps its state, its outbox and its inbox in its own database (:class:`Book`,
:class:`Outbox`, :class:`Inbox`) and publishes what others may read of it as a query module
(:class:`BookReader`); the relay publishes the outbox to Kafka (:class:`OutboxRelay`, wired
by :func:`relaying`); consumers handle each record once, retry, and dead-letter what they
cannot handle (:class:`EventConsumer`); :func:`run_service` runs the Temporal worker, the
relay, the background tasks and ``/healthz`` + ``/metrics`` of one process, and stops them
in order.

Services and the orchestrator import this facade only, never the private modules behind it.
"""

from runtime._activity_metrics import ActivityAttempts, ActivityMetrics
from runtime._book import Book
from runtime._clients import (
    KafkaUnavailableError,
    compression_type,
    new_admin,
    new_consumer,
    new_producer,
    wait_for_kafka,
)
from runtime._consumer import (
    DLQ_DROPPED_HEADER,
    DLQ_HEADER_PREFIX,
    UNPARSEABLE_RECORD,
    EventConsumer,
    EventHandler,
    HandlingFailed,
    Inbox,
    RetryPolicy,
)
from runtime._database import (
    Database,
    DatabaseError,
    IntegrityError,
    Where,
    describe,
    open_database,
    open_reader,
)
from runtime._metrics import EventBusMetrics, SchemaRegistryMetrics
from runtime._outbox import Outbox, OutboxClaims, OutboxRelay, OutboxRow, RelayLease
from runtime._reader import BookReader, BookUnreadable, EventCounts
from runtime._schema_registry import (
    CCOMPAT_PATH,
    CompatibilityAnswer,
    IncompatibleSchema,
    SchemaRegistry,
    SchemaRegistryError,
    SchemaRegistryUnavailable,
    Subject,
    SubjectVersion,
    WriterSchema,
    decode_record,
)
from runtime._service import (
    ACTIVITY_GRACE,
    DatabasePath,
    DomainEvents,
    ServiceContext,
    ServiceFactory,
    ServiceParts,
    causation_id,
    health_app,
    refusal,
    relaying,
    run_service,
    serve,
)
from runtime._stores import DatabaseUnavailableError, open_store
from runtime._temporal import TemporalUnavailableError, wait_for_temporal
from runtime._tracing import TRACE_HEADERS, consume_span, continue_trace
from runtime._transaction import transaction

__all__ = [
    "ACTIVITY_GRACE",
    "CCOMPAT_PATH",
    "DLQ_DROPPED_HEADER",
    "DLQ_HEADER_PREFIX",
    "TRACE_HEADERS",
    "UNPARSEABLE_RECORD",
    "ActivityAttempts",
    "ActivityMetrics",
    "Book",
    "BookReader",
    "BookUnreadable",
    "CompatibilityAnswer",
    "Database",
    "DatabaseError",
    "DatabasePath",
    "DatabaseUnavailableError",
    "DomainEvents",
    "EventBusMetrics",
    "EventConsumer",
    "EventCounts",
    "EventHandler",
    "HandlingFailed",
    "Inbox",
    "IncompatibleSchema",
    "IntegrityError",
    "KafkaUnavailableError",
    "Outbox",
    "OutboxClaims",
    "OutboxRelay",
    "OutboxRow",
    "RelayLease",
    "RetryPolicy",
    "SchemaRegistry",
    "SchemaRegistryError",
    "SchemaRegistryMetrics",
    "SchemaRegistryUnavailable",
    "ServiceContext",
    "ServiceFactory",
    "ServiceParts",
    "Subject",
    "SubjectVersion",
    "TemporalUnavailableError",
    "Where",
    "WriterSchema",
    "causation_id",
    "compression_type",
    "consume_span",
    "continue_trace",
    "decode_record",
    "describe",
    "health_app",
    "new_admin",
    "new_consumer",
    "new_producer",
    "open_database",
    "open_reader",
    "open_store",
    "refusal",
    "relaying",
    "run_service",
    "serve",
    "transaction",
    "wait_for_kafka",
    "wait_for_temporal",
]
