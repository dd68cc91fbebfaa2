"""One audit of a stack, live or stopped: read the sources, then check every order."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection
from datetime import datetime

from aiokafka.errors import KafkaError
from temporalio.client import Client

from infra.config.kafka import kafka_connection
from infra.config.payload_codec import data_converter
from infra.config.settings import Settings
from infra.config.temporal import temporal_connection
from ops.audit.checks import find_violations
from ops.audit.collectors import (
    SourceUnreadable,
    read_books,
    read_events,
    read_sagas,
    running_sagas,
    saga_query,
)
from ops.audit.report import AuditReport, AuditSource
from ops.audit.snapshot import AuditSnapshot
from runtime import (
    KafkaUnavailableError,
    SchemaRegistry,
    SchemaRegistryError,
    TemporalUnavailableError,
    wait_for_kafka,
    wait_for_temporal,
)

__all__ = ["AuditSourceError", "run_audit"]

_REACH_SECONDS = 5.0
"""How long Temporal and Kafka get to answer before the audit gives up on them."""
_WAIT_POLL_SECONDS = 1.0
_OFFLINE_HINT = "`saga audit --offline` checks the databases against each other alone"


class AuditSourceError(Exception):
    """A source of the audit cannot be read; the message says which, and what to do."""


async def run_audit(
    settings: Settings,
    *,
    wait_seconds: float = 0,
    offline: bool = False,
    orders: Collection[str] | None = None,
    since: datetime | None = None,
) -> AuditReport:
    """Audit the stack of ``settings``: every order's saga, records and events.

    Args:
        settings: The stack's settings: Temporal, Kafka, and the run directory that holds
            the services' databases.
        wait_seconds: Wait up to this long for the sagas in flight to end before checking;
            those still running then are reported in flight.
        offline: Read only the databases (not Temporal, not Kafka): the checks of records
            against records, an order's end taken from the order service's record.
        orders: Only these orders (all when None).
        since: Only orders first seen at or after this moment (aware datetime).

    Raises:
        AuditSourceError: Temporal or Kafka does not answer (and ``offline`` is not set),
            or a source cannot be read; nothing was checked.
    """
    started = time.perf_counter()
    wanted = frozenset(orders) if orders is not None else None
    try:
        if offline:
            snapshot = await _offline_snapshot(settings, wait_seconds, wanted)
        else:
            snapshot = await _live_snapshot(settings, wait_seconds, wanted, since)
    except SourceUnreadable as exc:
        raise AuditSourceError(str(exc)) from None
    report = find_violations(snapshot.only(wanted, since=since))
    unknown = sorted(wanted - snapshot.order_ids()) if wanted is not None else []
    return report.model_copy(
        update={
            "not_found": unknown,
            "offline": offline,
            "seconds": round(time.perf_counter() - started, 3),
        }
    )


async def _live_snapshot(
    settings: Settings,
    wait_seconds: float,
    wanted: frozenset[str] | None,
    since: datetime | None,
) -> AuditSnapshot:
    bootstrap = kafka_connection(settings)
    client = await _temporal(settings)
    await _kafka(settings)
    query = saga_query(wanted, since)
    if wait_seconds > 0:
        await _wait(
            lambda: running_sagas(client, saga_query(wanted, since, running_only=True)),
            wait_seconds,
            wanted,
        )
    # The sagas and the events so far first, side by side; then the records; then the
    # events published meanwhile (see collectors for why in this order).
    schemas = SchemaRegistry.from_settings(settings)
    listing = asyncio.create_task(read_sagas(client, query))
    early = asyncio.create_task(read_events(bootstrap, schemas=schemas))
    try:
        sagas, kafka = await asyncio.gather(listing, early)
        books = await asyncio.to_thread(read_books, settings)
        kafka.extend(await read_events(bootstrap, after=kafka.ends, schemas=schemas))
    except SchemaRegistryError as exc:
        raise AuditSourceError(
            f"the schema registry cannot resolve the events' schemas ({exc})"
        ) from exc
    except KafkaError as exc:
        raise AuditSourceError(
            f"Kafka at {bootstrap} stopped answering while being read "
            f"({type(exc).__name__}): is the stack up? (`saga ps`)"
        ) from None
    finally:
        # If one reading failed, the other is of no use.
        for task in (listing, early):
            task.cancel()
        await asyncio.gather(listing, early, return_exceptions=True)
        await schemas.aclose()
    for event in books.pending:
        kafka.add(event)
    events = kafka.by_order()
    not_events = f", {kafka.not_events} record(s) that are not events" if kafka.not_events else ""
    return books.snapshot(
        before=[
            AuditSource(
                name="temporal",
                used=True,
                detail=f"{settings.temporal_address} (namespace {settings.temporal_namespace}): "
                f"{len(sagas)} sagas",
            ),
            AuditSource(
                name="kafka",
                used=True,
                detail=f"{bootstrap}: {kafka.records} records of {len(events)} orders{not_events}",
            ),
        ],
        sagas=sagas,
        events=events,
    )


async def _offline_snapshot(
    settings: Settings, wait_seconds: float, wanted: frozenset[str] | None
) -> AuditSnapshot:
    if wait_seconds > 0:

        async def placed() -> set[str]:
            books = await asyncio.to_thread(read_books, settings)
            return {o for o, record in books.orders.items() if record.status == "placed"}

        await _wait(placed, wait_seconds, wanted)
    books = await asyncio.to_thread(read_books, settings)
    not_read = "not read (--offline): an order's end is its order record"
    return books.snapshot(
        before=[
            AuditSource(name="temporal", used=False, detail=not_read),
            AuditSource(
                name="kafka",
                used=False,
                detail="not read (--offline): records are not checked against events",
            ),
        ]
    )


async def _wait(
    in_flight: Callable[[], Awaitable[set[str]]],
    wait_seconds: float,
    wanted: frozenset[str] | None = None,
) -> None:
    """Wait until the orders in flight now have ended, or ``wait_seconds`` have passed.

    Orders that start meanwhile are not waited for: on a live stack there may always be some.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_seconds
    waiting = await in_flight()
    if wanted is not None:
        waiting &= wanted
    while waiting and loop.time() < deadline:
        await asyncio.sleep(min(_WAIT_POLL_SECONDS, max(deadline - loop.time(), 0)))
        waiting &= await in_flight()


async def _temporal(settings: Settings) -> Client:
    try:
        return await wait_for_temporal(
            temporal_connection(settings),
            settings.temporal_namespace,
            wait_seconds=_REACH_SECONDS,
            data_converter=data_converter(settings),
        )
    except TemporalUnavailableError as exc:
        raise AuditSourceError(f"{exc}; {_OFFLINE_HINT}") from None


async def _kafka(settings: Settings) -> None:
    try:
        await wait_for_kafka(kafka_connection(settings), wait_seconds=_REACH_SECONDS)
    except KafkaUnavailableError as exc:
        raise AuditSourceError(f"{exc}; {_OFFLINE_HINT}") from None
