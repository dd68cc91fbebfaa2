"""The event bus every service shares: outbox, relay, idempotent consumers, dead letters."""

from eventbus.clients import new_consumer, new_producer
from eventbus.cluster_metrics import KafkaClusterMetrics, KafkaClusterWatch
from eventbus.consumer import EventConsumer, EventHandler, Inbox, RetryPolicy
from eventbus.database import open_database
from eventbus.dead_letters import DeadLetter, list_dead_letters, redrive
from eventbus.metrics import EventBusMetrics
from eventbus.outbox import Outbox, OutboxRelay, OutboxRow
from eventbus.snapshot import TopicSnapshot
from eventbus.transaction import transaction

__all__ = [
    "DeadLetter",
    "EventBusMetrics",
    "EventConsumer",
    "EventHandler",
    "Inbox",
    "KafkaClusterMetrics",
    "KafkaClusterWatch",
    "Outbox",
    "OutboxRelay",
    "OutboxRow",
    "RetryPolicy",
    "TopicSnapshot",
    "list_dead_letters",
    "new_consumer",
    "new_producer",
    "open_database",
    "redrive",
    "transaction",
]
