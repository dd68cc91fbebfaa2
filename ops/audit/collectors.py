"""Reading the three sources into plain snapshots: Temporal, the services' databases, Kafka.

Each source is read in bulk: Temporal through one visibility list query (the ``OrderId``
and ``SagaStatus`` search attributes, no call per saga), each database in one read
transaction with one query per table, Kafka from the beginning of every domain topic without
a consumer group (a second pass decodes only what arrived during the first).

The order of the reads makes the comparison fair on a live stack. The sagas and the events
published so far come first (side by side); then the databases, each in one read transaction;
then the events published meanwhile. So a saga that was closed when listed had written all its
records before they were read; every record read has its event on Kafka or still pending in
its outbox; and every event of the first reading was on Kafka before the databases were read,
so its record must be in them (the second reading's events are not held to that).
"""

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Collection, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka import TopicPartition
from temporalio.api.common.v1 import Payload
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from contracts.activities import ORDER_SAGA_WORKFLOW, OrderSagaResult, SagaPhase, saga_workflow_id
from contracts.codec import decode_event
from contracts.envelope import AnyEvent, event_name
from contracts.errors import ContractError
from contracts.events.order import OrderRepairedData
from contracts.events.payment import PaymentRefundedV2Data
from contracts.topics import TOPICS
from infra.config.databases import database_for
from infra.config.kafka import KafkaTarget
from infra.config.settings import Settings
from ops.audit.report import AuditSource
from ops.audit.snapshot import (
    AuditSnapshot,
    LedgerEntry,
    OrderRecord,
    PaymentRecord,
    ReservationRecord,
    RestockRecord,
    ReturnLabelRecord,
    ReturnRecord,
    SagaRecord,
    SeenEvent,
    ShipmentRecord,
)
from ops.snapshot import TopicSnapshot
from orchestrator import queries as order_queries
from orchestrator.saga import SAGA_STATUS_KEY, SAGA_STEP_KEY
from orchestrator.workflows.order_saga import ORDER_ID_KEY
from runtime import (
    BookReader,
    BookUnreadable,
    SchemaRegistry,
    Where,
    decode_record,
    describe,
)
from workers.inventory import queries as inventory_queries
from workers.payment import queries as payment_queries
from workers.shipping import queries as shipping_queries

__all__ = [
    "DOMAIN_TOPICS",
    "Books",
    "KafkaEvents",
    "SourceUnreadable",
    "read_books",
    "read_events",
    "read_sagas",
    "running_sagas",
    "saga_query",
    "seen_event",
]

DOMAIN_TOPICS = [spec.name for spec in TOPICS]

_RPC_TIMEOUT = timedelta(seconds=30)
_RESULTS_AT_ONCE = 20
_PAGE_SIZE = 1000
_IDS_IN_QUERY = 200
_PLAIN_ID = re.compile(r"^[A-Za-z0-9._@:-]+$")
_REF_FIELD = {"payment": "payment_id", "inventory": "reservation_id", "shipping": "shipment_id"}
_FINAL = (SagaPhase.COMPLETED, SagaPhase.CANCELLED)


class SourceUnreadable(Exception):
    """A source answered but could not be read; the message says which and why."""


# --- Temporal ------------------------------------------------------------------------------


def saga_query(
    order_ids: Collection[str] | None = None,
    since: datetime | None = None,
    *,
    running_only: bool = False,
) -> str:
    """The visibility query of the order sagas, narrowed where Temporal can do it cheaply."""
    parts = [f"WorkflowType = '{ORDER_SAGA_WORKFLOW}'"]
    if running_only:
        parts.append("ExecutionStatus = 'Running'")
    if since is not None:
        parts.append(f"StartTime >= '{since.astimezone(UTC).isoformat()}'")
    # A long list, or ids that would need quoting, are filtered here rather than by Temporal.
    if (
        order_ids is not None
        and 0 < len(order_ids) <= _IDS_IN_QUERY
        and all(_PLAIN_ID.match(order_id) for order_id in order_ids)
    ):
        ids = ", ".join(f"'{saga_workflow_id(order_id)}'" for order_id in sorted(order_ids))
        parts.append(f"WorkflowId IN ({ids})")
    return " AND ".join(parts)


async def read_sagas(client: Client, query: str) -> dict[str, SagaRecord]:
    """Every saga the query lists, by order id (the latest run of each).

    The saga's end is its ``SagaStatus`` search attribute, which it sets at every
    transition; only a saga that completed without a final one is asked for its result.

    Raises:
        SourceUnreadable: Temporal refused the query.
    """
    latest: dict[str, SagaRecord] = {}
    async for info in _list(client, query):
        saga = _saga(info)
        known = latest.get(saga.order_id)
        if known is None or _started(saga) >= _started(known):
            latest[saga.order_id] = saga
    unsettled = [
        saga
        for saga in latest.values()
        if saga.execution_status == "COMPLETED" and saga.saga_status not in _FINAL
    ]
    gate = asyncio.Semaphore(_RESULTS_AT_ONCE)

    async def settle(saga: SagaRecord) -> None:
        async with gate:
            phase = await _result_phase(client, saga.workflow_id)
        if phase is not None:
            latest[saga.order_id] = replace(saga, saga_status=phase)

    await asyncio.gather(*(settle(saga) for saga in unsettled))
    return latest


async def running_sagas(client: Client, query: str) -> set[str]:
    """The order ids of the sagas ``query`` lists that are still running."""
    return {saga.order_id async for info in _list(client, query) if (saga := _saga(info)).running}


async def _list(client: Client, query: str) -> AsyncIterator[WorkflowExecutionInfo]:
    """Every execution ``query`` lists, page by page.

    The service's own call, not ``Client.list_workflows``: that decodes every search
    attribute of every execution twice over, most of an audit's time at 10,000 sagas.
    """
    token = b""
    while True:
        try:
            page = await client.workflow_service.list_workflow_executions(
                ListWorkflowExecutionsRequest(
                    namespace=client.namespace,
                    query=query,
                    page_size=_PAGE_SIZE,
                    next_page_token=token,
                ),
                retry=True,
                timeout=_RPC_TIMEOUT,
            )
        except RPCError as exc:
            raise SourceUnreadable(f"Temporal refused to list the sagas ({exc})") from None
        for info in page.executions:
            yield info
        token = page.next_page_token
        if not token:
            return


def _saga(info: WorkflowExecutionInfo) -> SagaRecord:
    fields = info.search_attributes.indexed_fields
    workflow_id = info.execution.workflow_id
    # The first workflow task sets OrderId: a saga not started yet has only its id.
    order_id = _keyword(fields.get(ORDER_ID_KEY.name)) or workflow_id.removeprefix(
        saga_workflow_id("")
    )
    return SagaRecord(
        order_id=order_id,
        workflow_id=workflow_id,
        execution_status=WorkflowExecutionStatus(info.status).name if info.status else "UNKNOWN",
        saga_status=_phase(_keyword(fields.get(SAGA_STATUS_KEY.name))),
        saga_step=_keyword(fields.get(SAGA_STEP_KEY.name)),
        started_at=info.start_time.ToDatetime(tzinfo=UTC) if info.HasField("start_time") else None,
    )


def _keyword(payload: Payload | None) -> str | None:
    """A keyword search attribute's value (its payload is the JSON of a string)."""
    if payload is None or not payload.data:
        return None
    try:
        value = json.loads(payload.data)
    except ValueError:
        return None
    return value if isinstance(value, str) else None


def _started(saga: SagaRecord) -> datetime:
    return saga.started_at or datetime.min.replace(tzinfo=UTC)


def _phase(value: str | None) -> SagaPhase | None:
    try:
        return SagaPhase(value) if value else None
    except ValueError:
        return None


async def _result_phase(client: Client, workflow_id: str) -> SagaPhase | None:
    handle = client.get_workflow_handle(workflow_id, result_type=OrderSagaResult)
    try:
        result: OrderSagaResult = await handle.result(follow_runs=False, rpc_timeout=_RPC_TIMEOUT)
    except Exception:  # noqa: BLE001 - an unreadable result leaves the search attribute's word
        return None
    return result.status


# --- The services' databases ---------------------------------------------------------------


@dataclass
class Books:
    """The services' records, as one read transaction of each database saw them."""

    orders: dict[str, OrderRecord] = field(default_factory=dict)
    payments: dict[str, PaymentRecord] = field(default_factory=dict)
    ledger: dict[str, list[LedgerEntry]] = field(default_factory=dict)
    reservations: dict[str, ReservationRecord] = field(default_factory=dict)
    shipments: dict[str, ShipmentRecord] = field(default_factory=dict)
    returns: dict[str, list[ReturnRecord]] = field(default_factory=dict)
    restocks: dict[str, list[RestockRecord]] = field(default_factory=dict)
    return_labels: dict[str, list[ReturnLabelRecord]] = field(default_factory=dict)
    pending: list[SeenEvent] = field(default_factory=list)
    """Events still waiting in the services' outboxes."""
    sources: list[AuditSource] = field(default_factory=list)

    def snapshot(
        self,
        *,
        before: list[AuditSource],
        sagas: dict[str, SagaRecord] | None = None,
        events: dict[str, list[SeenEvent]] | None = None,
    ) -> AuditSnapshot:
        """These records beside what Temporal and Kafka said (None: not read), with the
        sources ``before`` the databases' own."""
        return AuditSnapshot(
            orders=self.orders,
            payments=self.payments,
            ledger=self.ledger,
            reservations=self.reservations,
            shipments=self.shipments,
            returns=self.returns,
            restocks=self.restocks,
            return_labels=self.return_labels,
            sagas=sagas,
            events=events,
            sources=[*before, *self.sources],
        )


def read_books(settings: Settings) -> Books:
    """Read every service's records through its query module, from its database under
    ``run_dir``, read-only.

    Raises:
        SourceUnreadable: a database is missing or cannot be read.
    """
    books = Books()
    run_dir = settings.run_dir
    path = database_for(settings, "orchestrator", order_queries.database_path(run_dir))
    with _reading("orders", run_dir, path, order_queries.OrderQueries) as orchestrator:
        for order in orchestrator.orders():
            books.orders[order.order_id] = OrderRecord(
                order.order_id, order.status, order.placed_at
            )
        returned = _lines_by_return(orchestrator.return_lines())
        returns = orchestrator.returns()
        for decided in returns:
            books.returns.setdefault(decided.order_id, []).append(
                ReturnRecord(
                    order_id=decided.order_id,
                    return_id=decided.return_id,
                    status=decided.status,
                    lines=returned.get(decided.return_id, {}),
                    amount_minor=decided.amount_minor,
                    currency=decided.currency,
                    refund_id=decided.refund_id,
                    created_at=decided.created_at,
                )
            )
        pending = _pending(orchestrator)
    books.pending += pending
    books.sources.append(
        _source("orders", path, f"{len(books.orders)} orders, {len(returns)} returns", len(pending))
    )

    path = database_for(settings, "payment", payment_queries.database_path(run_dir))
    with _reading("payment", run_dir, path, payment_queries.PaymentQueries) as payment:
        for row in payment.payments():
            books.payments[row.order_id] = PaymentRecord(
                row.order_id, row.payment_id, row.status.value, row.created_at
            )
        entries = payment.ledger_entries()
        for entry in entries:
            books.ledger.setdefault(entry.order_id, []).append(entry)
        pending = _pending(payment)
    books.pending += pending
    books.sources.append(
        _source(
            "payment",
            path,
            f"{len(books.payments)} payments, {len(entries)} ledger entries",
            len(pending),
        )
    )

    path = database_for(settings, "inventory", inventory_queries.database_path(run_dir))
    with _reading("inventory", run_dir, path, inventory_queries.InventoryQueries) as inventory:
        for reservation in inventory.reservations():
            books.reservations[reservation.order_id] = ReservationRecord(
                reservation.order_id,
                reservation.reservation_id,
                reservation.status.value,
                reservation.created_at,
            )
        restocked = _lines_by_return(inventory.restock_lines())
        restocks = inventory.restocks()
        for restock in restocks:
            books.restocks.setdefault(restock.order_id, []).append(
                RestockRecord(
                    order_id=restock.order_id,
                    return_id=restock.return_id,
                    lines=restocked.get(restock.return_id, {}),
                    created_at=restock.created_at,
                )
            )
        pending = _pending(inventory)
    books.pending += pending
    books.sources.append(
        _source(
            "inventory",
            path,
            f"{len(books.reservations)} reservations, {len(restocks)} restocks",
            len(pending),
        )
    )

    path = database_for(settings, "shipping", shipping_queries.database_path(run_dir))
    with _reading("shipping", run_dir, path, shipping_queries.ShippingQueries) as shipping:
        for shipment in shipping.shipments():
            books.shipments[shipment.order_id] = ShipmentRecord(
                shipment.order_id,
                shipment.shipment_id,
                shipment.status.value,
                shipment.carrier,
                shipment.scheduled_at,
            )
        labels = shipping.return_labels()
        for label in labels:
            books.return_labels.setdefault(label.order_id, []).append(
                ReturnLabelRecord(
                    order_id=label.order_id,
                    return_id=label.return_id,
                    label_id=label.label_id,
                    status=label.status.value,
                    issued_at=label.issued_at,
                )
            )
        pending = _pending(shipping)
    books.pending += pending
    books.sources.append(
        _source(
            "shipping",
            path,
            f"{len(books.shipments)} shipments, {len(labels)} return labels",
            len(pending),
        )
    )
    return books


class _ReturnedLine(Protocol):
    """A line of a return or of its restock."""

    @property
    def return_id(self) -> str: ...
    @property
    def sku(self) -> str: ...
    @property
    def quantity(self) -> int: ...


def _lines_by_return(lines: Iterable[_ReturnedLine]) -> dict[str, dict[str, int]]:
    """Units per SKU of each return, from the rows of its lines."""
    by_return: dict[str, dict[str, int]] = {}
    for line in lines:
        units = by_return.setdefault(line.return_id, {})
        units[line.sku] = units.get(line.sku, 0) + line.quantity
    return by_return


_Reader = TypeVar("_Reader", bound=BookReader)


@contextlib.contextmanager
def _reading(name: str, run_dir: Path, path: Where, queries: type[_Reader]) -> Iterator[_Reader]:
    """One read transaction on a service's database, through its query module."""
    if isinstance(path, Path) and not path.is_file():
        raise SourceUnreadable(
            f"no {name} database at {path}: is SAGA_RUN_DIR ({run_dir}) the stack's run "
            "directory? (`saga config`)"
        )
    try:
        reader = queries.open(path)
    except BookUnreadable as exc:
        raise SourceUnreadable(f"cannot open {describe(path)} ({exc})") from None
    try:
        # One snapshot of the whole file: the records and the outbox as of one moment.
        with reader, reader.snapshot():
            yield reader
    except BookUnreadable as exc:
        raise SourceUnreadable(
            f"cannot read the {name} records in {describe(path)} ({exc}): is it the stack's "
            "database?"
        ) from None


def _pending(reader: BookReader) -> list[SeenEvent]:
    """The events still waiting in the outbox that ``reader`` reads (not yet sent to Kafka)."""
    pending = []
    for row in reader.pending_events():
        try:
            event = decode_event(row.value, row.headers)
        except ContractError as exc:
            raise SourceUnreadable(
                f"outbox row of event {row.event_id} is unreadable ({exc})"
            ) from None
        pending.append(seen_event(event, settled=False, pending=True))
    return pending


def _source(name: str, path: Where, records: str, pending: int) -> AuditSource:
    waiting = f", {pending} event(s) waiting in its outbox" if pending else ""
    return AuditSource(name=name, used=True, detail=f"{describe(path)}: {records}{waiting}")


# --- Kafka ---------------------------------------------------------------------------------


@dataclass
class KafkaEvents:
    """Domain events of some orders, each once however often it was published."""

    ends: dict[TopicPartition, int] = field(default_factory=dict)
    """Where the reading stopped: the topics' ends when it began."""
    records: int = 0
    """Records read."""
    not_events: int = 0
    """Records that are not events (the consumers dead-lettered them)."""
    _events: dict[str, dict[str, SeenEvent]] = field(default_factory=dict)

    def add(self, event: SeenEvent) -> None:
        """Add ``event``; a copy already there stays, unless only the new one is settled."""
        of_order = self._events.setdefault(event.order_id, {})
        known = of_order.get(event.event_id)
        if known is None or (event.settled and not known.settled):
            of_order[event.event_id] = event

    def extend(self, later: "KafkaEvents") -> None:
        """Add what a later reading found."""
        for of_order in later._events.values():
            for event in of_order.values():
                self.add(event)
        self.ends = later.ends
        self.records += later.records
        self.not_events += later.not_events

    def by_order(self) -> dict[str, list[SeenEvent]]:
        """The events of each order."""
        return {order_id: list(events.values()) for order_id, events in self._events.items()}


async def read_events(
    bootstrap_servers: KafkaTarget,
    *,
    after: dict[TopicPartition, int] | None = None,
    schemas: SchemaRegistry | None = None,
) -> KafkaEvents:
    """Every domain event from the beginning of the topics to where they end now.

    A first reading's events are settled: read before the databases, each has its record
    there. A second reading, after the databases, continues ``after`` the first one's ends
    and finds the events of the records written meanwhile; they are not settled. Framed
    records are decoded through ``schemas``, legacy ones by their fingerprint.

    Raises:
        SourceUnreadable: a domain topic does not exist: not the stack's cluster.
        KafkaError: Kafka does not answer, or stopped answering while being read.
        SchemaRegistryError: the registry could not resolve a schema id.
    """
    found = KafkaEvents()
    settled = after is None
    async with TopicSnapshot(
        bootstrap_servers, DOMAIN_TOPICS, stall_seconds=15, max_poll_records=5000
    ) as snapshot:
        _require_topics(bootstrap_servers, snapshot)
        found.ends = dict(snapshot.end_offsets)
        async for record in snapshot.records():
            if after is not None and record.offset < after.get(
                TopicPartition(record.topic, record.partition), 0
            ):
                continue  # the first reading had it
            found.records += 1
            try:
                event = await decode_record(schemas, record.value, record.headers)
            except ContractError:
                found.not_events += 1
                continue
            found.add(seen_event(event, settled=settled))
    return found


def _require_topics(bootstrap_servers: KafkaTarget, snapshot: TopicSnapshot) -> None:
    if snapshot.missing_topics:
        raise SourceUnreadable(
            f"Kafka at {bootstrap_servers} has no topic {', '.join(snapshot.missing_topics)}: "
            "is SAGA_KAFKA_BOOTSTRAP_SERVERS the stack's cluster? (`saga up` creates them)"
        )


def seen_event(event: AnyEvent, *, settled: bool = True, pending: bool = False) -> SeenEvent:
    """What the checks need of one event: its order, id, name and what it is about."""
    name = event_name(event.event_type)
    data: Any = event.data
    ref: str | None
    note = None
    if isinstance(data, OrderRepairedData):
        ref = data.step
        note = f"{data.action} by {data.operator} ({data.reason})"
    elif isinstance(data, PaymentRefundedV2Data) and data.refund_id is not None:
        ref = data.refund_id  # a return's refund: one of several of the same payment
    else:
        ref_field = _REF_FIELD.get(name.partition(".")[0])
        ref = getattr(data, ref_field, None) if ref_field else None
    return SeenEvent(
        order_id=event.correlation_id,
        event_id=str(event.event_id),
        name=name,
        ref=ref,
        timestamp=event.timestamp,
        settled=settled,
        pending=pending,
        note=note,
    )
