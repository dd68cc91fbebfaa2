"""`saga audit`: the checker on snapshots made by hand, then on the real stack, where each kind
of violation is planted for real (rows changed in the services' databases, stray events
published on Kafka) on orders of this module's own, and found with its order and kind."""

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from cli.audit import _moment
from contracts import (
    AnyEvent,
    InventoryReserved,
    InventoryReservedData,
    Money,
    PaymentCompleted,
    PaymentCompletedData,
    StockLine,
)
from contracts.activities import SagaPhase
from contracts.codec import encode_event
from infra.config.settings import Settings, api_headers
from infra.engines.processes import free_port
from ops.audit import (
    AuditReport,
    AuditSnapshot,
    AuditSourceError,
    LedgerEntry,
    OrderRecord,
    PaymentRecord,
    ReservationRecord,
    SagaRecord,
    SeenEvent,
    ShipmentRecord,
    ViolationKind,
    find_violations,
    run_audit,
)
from runtime import new_producer
from tests.support.orders_api import order_body, place, until_ended

K = ViolationKind
_T = 1_700_000_000.0
_SAGA = [sys.executable, "-m", "cli"]


# --- The checker, on snapshots made by hand ----------------------------------------------------


def _event(order_id: str, name: str, ref: str | None = None, **fields: Any) -> SeenEvent:
    return SeenEvent(
        order_id=order_id,
        event_id=str(uuid.uuid4()),
        name=name,
        ref=ref,
        timestamp=datetime.fromtimestamp(_T, UTC),
        **fields,
    )


def _completed(order_id: str = "done") -> AuditSnapshot:
    """A completed order whose saga, records and events all agree."""
    pay, res, shp = f"pay-{order_id}", f"res-{order_id}", f"shp-{order_id}"
    return AuditSnapshot(
        orders={order_id: OrderRecord(order_id, "completed", _T)},
        payments={order_id: PaymentRecord(order_id, pay, "captured", _T)},
        ledger={order_id: [LedgerEntry(order_id, "charge", pay, 3000, "EUR", _T)]},
        reservations={order_id: ReservationRecord(order_id, res, "reserved", _T)},
        shipments={order_id: ShipmentRecord(order_id, shp, "dispatched", "DHL", _T)},
        sagas={
            order_id: SagaRecord(order_id, f"order-{order_id}", "COMPLETED", SagaPhase.COMPLETED)
        },
        events={
            order_id: [
                _event(order_id, "order.placed"),
                _event(order_id, "payment.completed", pay),
                _event(order_id, "inventory.reserved", res),
                _event(order_id, "shipping.scheduled", shp),
                _event(order_id, "shipping.dispatched", shp),
                _event(order_id, "order.completed"),
            ]
        },
    )


def _cancelled(order_id: str = "undone") -> AuditSnapshot:
    """An order undone after its shipment was scheduled, everything given back."""
    pay, res, shp = f"pay-{order_id}", f"res-{order_id}", f"shp-{order_id}"
    return AuditSnapshot(
        orders={order_id: OrderRecord(order_id, "cancelled", _T)},
        payments={order_id: PaymentRecord(order_id, pay, "refunded", _T)},
        ledger={
            order_id: [
                LedgerEntry(order_id, "charge", pay, 3000, "EUR", _T),
                LedgerEntry(order_id, "refund", pay, 3000, "EUR", _T),
            ]
        },
        reservations={order_id: ReservationRecord(order_id, res, "released", _T)},
        shipments={order_id: ShipmentRecord(order_id, shp, "cancelled", "DHL", _T)},
        sagas={
            order_id: SagaRecord(order_id, f"order-{order_id}", "COMPLETED", SagaPhase.CANCELLED)
        },
        events={
            order_id: [
                _event(order_id, "order.placed"),
                _event(order_id, "payment.completed", pay),
                _event(order_id, "inventory.reserved", res),
                _event(order_id, "shipping.scheduled", shp),
                _event(order_id, "shipping.cancelled", shp),
                _event(order_id, "inventory.released", res),
                _event(order_id, "payment.refunded", pay),
                _event(order_id, "order.cancelled"),
            ]
        },
    )


def _without(snapshot: AuditSnapshot, order_id: str, *names: str) -> None:
    if snapshot.events is not None:
        snapshot.events[order_id] = [e for e in snapshot.events[order_id] if e.name not in names]


def _kinds(report: AuditReport, order_id: str) -> set[ViolationKind]:
    return {violation.kind for violation in report.violations_of(order_id)}


def test_orders_whose_sources_agree_have_no_violation() -> None:
    done, undone = _completed(), _cancelled()
    snapshot = AuditSnapshot(
        orders=done.orders | undone.orders,
        payments=done.payments | undone.payments,
        ledger=done.ledger | undone.ledger,
        reservations=done.reservations | undone.reservations,
        shipments=done.shipments | undone.shipments,
        sagas=(done.sagas or {}) | (undone.sagas or {}),
        events=(done.events or {}) | (undone.events or {}),
    )
    report = find_violations(snapshot)
    assert report.violations == []
    assert report.checked_orders == 2
    assert report.in_flight == []
    assert report.counts == dict.fromkeys(ViolationKind, 0)
    assert report.skipped_checks == {}


def _refund_lost(s: AuditSnapshot) -> None:
    s.ledger["undone"] = [e for e in s.ledger["undone"] if e.kind == "charge"]
    s.payments["undone"] = replace(s.payments["undone"], status="captured")
    _without(s, "undone", "payment.refunded")


def _charged_twice_in_ledger(s: AuditSnapshot) -> None:
    s.ledger["done"].append(LedgerEntry("done", "charge", "pay-2", 3000, "EUR", _T))
    assert s.events is not None
    s.events["done"].append(_event("done", "payment.completed", "pay-2"))


def _charged_twice_on_kafka(s: AuditSnapshot) -> None:
    assert s.events is not None
    s.events["done"].append(_event("done", "payment.completed", "pay-2"))


def _stock_kept(s: AuditSnapshot) -> None:
    s.reservations["undone"] = replace(s.reservations["undone"], status="reserved")
    _without(s, "undone", "inventory.released")


def _shipment_kept(s: AuditSnapshot) -> None:
    s.shipments["undone"] = replace(s.shipments["undone"], status="scheduled")
    _without(s, "undone", "shipping.cancelled")


def _dispatched_anyway(s: AuditSnapshot) -> None:
    s.shipments["undone"] = replace(s.shipments["undone"], status="dispatched")
    assert s.events is not None
    s.events["undone"] = [
        replace(e, name="shipping.dispatched") if e.name == "shipping.cancelled" else e
        for e in s.events["undone"]
    ]


def _no_reservation(s: AuditSnapshot) -> None:
    del s.reservations["done"]
    _without(s, "done", "inventory.reserved")


def _dispatch_event_lost(s: AuditSnapshot) -> None:
    _without(s, "done", "shipping.dispatched")


def _stray_refusal(s: AuditSnapshot) -> None:
    assert s.events is not None
    s.events["undone"].append(_event("undone", "inventory.unavailable"))


def _terminated_while_waiting(s: AuditSnapshot) -> None:
    assert s.sagas is not None
    s.sagas["done"] = replace(
        s.sagas["done"],
        execution_status="TERMINATED",
        saga_status=SagaPhase.RUNNING,
        saga_step="await_dispatch",
    )
    s.orders["done"] = replace(s.orders["done"], status="placed")
    s.shipments["done"] = replace(s.shipments["done"], status="scheduled")
    _without(s, "done", "shipping.dispatched", "order.completed")


def _order_record_disagrees(s: AuditSnapshot) -> None:
    s.orders["done"] = replace(s.orders["done"], status="cancelled")
    assert s.events is not None
    s.events["done"] = [
        replace(e, name="order.cancelled") if e.name == "order.completed" else e
        for e in s.events["done"]
    ]


@pytest.mark.parametrize(
    ("make", "plant", "order_id", "expected"),
    [
        (_cancelled, _refund_lost, "undone", {K.CHARGED_NOT_REFUNDED}),
        (_completed, _charged_twice_in_ledger, "done", {K.DOUBLE_CHARGE}),
        (_completed, _charged_twice_on_kafka, "done", {K.DOUBLE_CHARGE, K.EVENT_WITHOUT_RECORD}),
        (_cancelled, _stock_kept, "undone", {K.STOCK_NOT_RESTORED}),
        (_cancelled, _shipment_kept, "undone", {K.SHIPMENT_ACTIVE}),
        (_cancelled, _dispatched_anyway, "undone", {K.SHIPMENT_ACTIVE}),
        (_completed, _no_reservation, "done", {K.COMPLETED_INCOMPLETE}),
        (_completed, _dispatch_event_lost, "done", {K.MISSING_EVENT}),
        (_cancelled, _stray_refusal, "undone", {K.EVENT_WITHOUT_RECORD}),
        (_completed, _terminated_while_waiting, "done", {K.SAGA_UNFINISHED}),
        (_completed, _order_record_disagrees, "done", {K.STATUS_MISMATCH}),
    ],
    ids=lambda value: getattr(value, "__name__", None),
)
def test_each_kind_of_violation_is_found(
    make: Callable[[], AuditSnapshot],
    plant: Callable[[AuditSnapshot], None],
    order_id: str,
    expected: set[ViolationKind],
) -> None:
    snapshot = make()
    plant(snapshot)
    report = find_violations(snapshot)
    assert _kinds(report, order_id) == expected, report.violations
    assert all(violation.detail for violation in report.violations)
    for kind in expected:
        assert report.counts[kind] >= 1


def test_a_running_saga_is_in_flight_and_not_checked() -> None:
    snapshot = _completed()
    assert snapshot.sagas is not None
    snapshot.sagas["done"] = replace(snapshot.sagas["done"], execution_status="RUNNING")
    del snapshot.shipments["done"]
    report = find_violations(snapshot)
    assert report.in_flight == ["done"]
    assert report.checked_orders == 0
    assert report.violations == []


def test_a_saga_ended_before_its_first_step_left_nothing_to_undo() -> None:
    snapshot = AuditSnapshot(
        sagas={"never": SagaRecord("never", "order-never", "TERMINATED", saga_status=None)},
        events={},
    )
    report = find_violations(snapshot)
    assert (report.checked_orders, report.violations) == (1, [])


def test_events_on_their_way_are_neither_missing_nor_unbacked() -> None:
    """An event still in an outbox is not missing; one that reached Kafka after the databases
    were read may have a record they did not show yet."""
    snapshot = _completed()
    assert snapshot.events is not None
    snapshot.events["done"] = [
        replace(e, pending=True, settled=False) if e.name == "shipping.dispatched" else e
        for e in snapshot.events["done"]
    ]
    snapshot.events["done"].append(_event("done", "payment.refunded", "pay-done", settled=False))
    assert find_violations(snapshot).violations == []


def test_offline_the_order_record_says_how_the_order_ended() -> None:
    snapshot = replace(_cancelled(), sagas=None, events=None)
    _refund_lost(snapshot)
    snapshot.orders["new"] = OrderRecord("new", "placed", _T)
    report = find_violations(snapshot)
    assert _kinds(report, "undone") == {K.CHARGED_NOT_REFUNDED}
    assert "its order record says so" in report.violations[0].detail
    assert report.in_flight == ["new"]
    assert report.offline
    assert set(report.skipped_checks) == {
        K.MISSING_EVENT,
        K.EVENT_WITHOUT_RECORD,
        K.SAGA_UNFINISHED,
        K.STATUS_MISMATCH,
    }
    assert not set(report.counts) & set(report.skipped_checks)


def test_an_order_whose_saga_temporal_no_longer_holds_is_judged_by_its_record() -> None:
    snapshot = _cancelled()
    _stock_kept(snapshot)
    assert snapshot.sagas is not None
    snapshot.sagas.clear()
    report = find_violations(snapshot)
    assert _kinds(report, "undone") == {K.STOCK_NOT_RESTORED}
    assert "no longer holds its saga" in report.violations[0].detail


def test_an_operators_repair_is_named_beside_the_violation() -> None:
    snapshot = _cancelled()
    _refund_lost(snapshot)
    assert snapshot.events is not None
    snapshot.events["undone"].append(
        _event(
            "undone",
            "order.repaired",
            "charge_payment",
            note="resolve_manually by ops (refunded by bank transfer)",
        )
    )
    (violation,) = find_violations(snapshot).violations
    assert "refunded by bank transfer" in violation.detail


def test_a_snapshot_narrows_to_orders_and_to_a_time() -> None:
    done, undone = _completed(), _cancelled()
    later = replace(undone, orders={"undone": OrderRecord("undone", "cancelled", _T + 60)})
    both = AuditSnapshot(
        orders={**done.orders, **later.orders},
        sagas=None,
        events=None,
    )
    assert both.only(["done"]).order_ids() == {"done"}
    since = datetime.fromtimestamp(_T + 30, UTC)
    assert both.only(since=since).order_ids() == {"undone"}
    assert both.only(["done"], since=since).order_ids() == set()


# --- On the real stack: violations planted for real -------------------------------------------


@dataclass(frozen=True)
class Planted:
    """This module's orders on the session stack, each with the violation planted on it."""

    clean: str
    """Completed and untouched."""
    completed_incomplete: str
    double_charge: str
    charged_not_refunded: str
    stock_not_restored: str
    shipment_active: str
    missing_event: str
    event_without_record: str
    unknown_order: str
    """No saga and no record anywhere: only a stray event on Kafka."""

    @property
    def expected(self) -> dict[str, set[ViolationKind]]:
        """Each order's violations: the planted kind, and the records it contradicts."""
        return {
            self.clean: set(),
            # The reservation was deleted: inventory.reserved has nothing behind it.
            self.completed_incomplete: {K.COMPLETED_INCOMPLETE, K.EVENT_WITHOUT_RECORD},
            # A second payment.completed, for a payment the ledger never recorded.
            self.double_charge: {K.DOUBLE_CHARGE, K.EVENT_WITHOUT_RECORD},
            # The refund entry is gone: payment.refunded has nothing behind it.
            self.charged_not_refunded: {K.CHARGED_NOT_REFUNDED, K.EVENT_WITHOUT_RECORD},
            # Back to reserved: inventory.released has nothing behind it.
            self.stock_not_restored: {K.STOCK_NOT_RESTORED, K.EVENT_WITHOUT_RECORD},
            # Back to scheduled: shipping.cancelled has nothing behind it.
            self.shipment_active: {K.SHIPMENT_ACTIVE, K.EVENT_WITHOUT_RECORD},
            self.missing_event: {K.MISSING_EVENT},
            self.event_without_record: {K.EVENT_WITHOUT_RECORD},
            self.unknown_order: {K.EVENT_WITHOUT_RECORD},
        }


def _body(
    token: str = "tok_visa", country: str = "DE", deadline: int | None = None
) -> dict[str, Any]:
    return order_body(
        token, country, sku="SKU-1002", prefix="audit", customer_id="cust-audit", deadline=deadline
    )


async def _ended(api: httpx.AsyncClient, order_id: str) -> str:
    """The saga's status once Temporal has closed it."""
    saga = await until_ended(api, order_id, closing_event=False)
    status: str = saga["saga"]["status"]
    return status


@contextmanager
def _writing(stack: Settings, service: str) -> Iterator[sqlite3.Connection]:
    """One write transaction on a live service database, as a careless operator would."""
    with closing(sqlite3.connect(stack.run_dir / f"{service}.db", timeout=30)) as db:
        db.isolation_level = None
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")


async def _publish(stack: Settings, *events: AnyEvent) -> None:
    producer = new_producer(stack.kafka_bootstrap_servers)
    await producer.start()
    try:
        for event in events:
            encoded = encode_event(event)
            await producer.send_and_wait(
                encoded.topic, encoded.value, key=encoded.key, headers=encoded.headers
            )
    finally:
        await producer.stop()


def _stray_capture(order_id: str) -> PaymentCompleted:
    return PaymentCompleted(
        data=PaymentCompletedData(
            order_id=order_id,
            payment_id=f"pay-stray-{uuid.uuid4().hex[:8]}",
            amount=Money(amount_minor=1500, currency="EUR"),
        ),
        correlation_id=order_id,
        source="payment-service",
    )


@pytest.fixture(scope="module")
async def planted(stack: Settings) -> AsyncIterator[Planted]:
    """Real orders through the stack, then one violation planted on each but the clean one."""
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=api_headers(stack)
    ) as api:
        bodies = {
            "clean": _body(),
            "completed_incomplete": _body(),
            "double_charge": _body(),
            "charged_not_refunded": _body(country="AQ"),
            "stock_not_restored": _body(country="AQ"),
            "shipment_active": _body(deadline=1),
            "missing_event": _body(token="tok_chargeDeclined"),
            "event_without_record": _body(token="tok_chargeDeclined"),
        }
        ids = {name: await place(api, body) for name, body in bodies.items()}
        statuses = await asyncio.gather(*(_ended(api, order_id) for order_id in ids.values()))
    completed = {"clean", "completed_incomplete", "double_charge"}
    assert dict(zip(ids, statuses, strict=True)) == {
        name: "COMPLETED" if name in completed else "CANCELLED" for name in ids
    }
    planted = Planted(**ids, unknown_order=f"audit-stray-{uuid.uuid4().hex[:12]}")

    with _writing(stack, "inventory") as db:
        db.execute(
            "DELETE FROM reservation_lines WHERE order_id = ?", (planted.completed_incomplete,)
        )
        db.execute("DELETE FROM reservations WHERE order_id = ?", (planted.completed_incomplete,))
        db.execute(
            "UPDATE reservations SET status = 'reserved' WHERE order_id = ?",
            (planted.stock_not_restored,),
        )
        # A reservation, released, that the inventory service never announced.
        db.execute(
            "INSERT INTO reservations (order_id, reservation_id, status, created_at, updated_at)"
            " VALUES (?, ?, 'released', ?, ?)",
            (planted.missing_event, f"res-planted-{uuid.uuid4().hex}", time.time(), time.time()),
        )
        db.execute(
            "INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, 'SKU-1002', 1)",
            (planted.missing_event,),
        )
    with _writing(stack, "payment") as db:
        db.execute(
            "DELETE FROM ledger_entries WHERE order_id = ? AND kind = 'refund'",
            (planted.charged_not_refunded,),
        )
        db.execute(
            "UPDATE payments SET status = 'captured' WHERE order_id = ?",
            (planted.charged_not_refunded,),
        )
    with _writing(stack, "shipping") as db:
        # Scheduled again, for tomorrow: the simulated carrier leaves it alone this session.
        db.execute(
            "UPDATE shipments SET status = 'scheduled', scheduled_at = ? WHERE order_id = ?",
            (time.time() + 86400, planted.shipment_active),
        )
    await _publish(
        stack,
        _stray_capture(planted.double_charge),
        _stray_capture(planted.event_without_record),
        InventoryReserved(
            data=InventoryReservedData(
                order_id=planted.unknown_order,
                reservation_id=f"res-stray-{uuid.uuid4().hex[:8]}",
                items=[StockLine(sku="SKU-1002", quantity=1)],
            ),
            correlation_id=planted.unknown_order,
            source="inventory-service",
        ),
    )
    yield planted


async def test_the_audit_finds_each_planted_violation(stack: Settings, planted: Planted) -> None:
    """Every planted violation with its order and kind; the untouched order is clean."""
    expected = planted.expected
    report = await run_audit(stack, orders=set(expected))
    found = {order_id: _kinds(report, order_id) for order_id in expected}
    assert found == expected, "\n".join(
        f"{v.order_id} {v.kind}: {v.detail}" for v in report.violations
    )
    assert report.checked_orders == len(expected)
    assert report.in_flight == []
    assert report.not_found == []
    assert not report.offline and report.skipped_checks == {}
    assert {source.name for source in report.sources if source.used} == {
        "temporal",
        "kafka",
        "orders",
        "payment",
        "inventory",
        "shipping",
    }
    # The evidence names what was found where.
    missing = " | ".join(v.detail for v in report.violations_of(planted.missing_event))
    assert "implies inventory.reserved" in missing and "implies inventory.released" in missing
    double = " | ".join(v.detail for v in report.violations_of(planted.double_charge))
    assert "payment.completed for 2 payments" in double
    assert report.seconds < 30


async def test_offline_the_databases_alone_still_find_what_they_can_prove(
    stack: Settings, planted: Planted
) -> None:
    """Without Temporal and Kafka: the record-against-record violations, nothing about events."""
    report = await run_audit(stack, offline=True, orders=set(planted.expected))
    provable = {
        K.COMPLETED_INCOMPLETE,
        K.CHARGED_NOT_REFUNDED,
        K.STOCK_NOT_RESTORED,
        K.SHIPMENT_ACTIVE,
    }
    found = {order_id: _kinds(report, order_id) for order_id in planted.expected}
    assert found == {order_id: kinds & provable for order_id, kinds in planted.expected.items()}
    assert report.offline
    assert [s.name for s in report.sources if not s.used] == ["temporal", "kafka"]
    # The stray event's order is on Kafka only: offline, nothing knows it.
    assert report.not_found == [planted.unknown_order]


async def test_a_saga_in_flight_is_waited_for_then_checked(stack: Settings) -> None:
    async with httpx.AsyncClient(
        base_url=stack.api_url, timeout=30, headers=api_headers(stack)
    ) as api:
        order_id = await place(api, _body())
    # The carrier takes seconds to dispatch: the saga is still running now.
    report = await run_audit(stack, orders={order_id})
    assert report.in_flight == [order_id]
    assert report.checked_orders == 0
    assert report.violations == []
    report = await run_audit(stack, orders={order_id}, wait_seconds=60)
    assert report.in_flight == []
    assert report.checked_orders == 1
    assert report.violations == []


async def test_an_unreachable_source_is_an_error_that_says_what_to_do(stack: Settings) -> None:
    nowhere = f"127.0.0.1:{free_port()}"
    with pytest.raises(AuditSourceError, match=r"saga up.*--offline"):
        await run_audit(stack.model_copy(update={"kafka_bootstrap_servers": nowhere}))


# --- The command -------------------------------------------------------------------------------


def _saga(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*_SAGA, "audit", *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(stack: Settings) -> dict[str, str]:
    """The environment of a `saga` pointed at the session's stack."""
    clean = {name: value for name, value in os.environ.items() if not name.startswith("SAGA_")}
    return {**clean, **stack.as_env()}


def test_the_command_exits_1_on_a_violation_and_0_when_clean(
    env: dict[str, str], planted: Planted
) -> None:
    found = _saga(env, "--order", planted.clean, "--order", planted.stock_not_restored)
    assert found.returncode == 1, found.stdout + found.stderr
    # The planted stock, and the inventory.released it contradicts.
    assert "checked 2 order(s)" in found.stdout and "2 violation(s)" in found.stdout
    rows = [line.split(maxsplit=2) for line in found.stdout.splitlines()]
    kinds = {row[1]: row[2] for row in rows if row and row[0] == planted.stock_not_restored}
    assert set(kinds) == {"stock_not_restored", "event_without_record"}
    assert "still reserved" in kinds["stock_not_restored"]

    clean = _saga(env, "--order", planted.clean, "--json")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    report = json.loads(clean.stdout)
    assert (report["checked_orders"], report["violations"]) == (1, [])
    assert report["counts"]["double_charge"] == 0


def test_the_command_exits_2_with_one_line_when_a_source_is_down(
    env: dict[str, str], tmp_path: Path
) -> None:
    down = _saga({**env, "SAGA_TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}"})
    assert down.returncode == 2, down.stdout + down.stderr
    assert down.stderr.startswith("saga: Temporal at ")
    assert "saga up" in down.stderr and "--offline" in down.stderr
    assert down.stderr.count("\n") == 1

    elsewhere = _saga({**env, "SAGA_RUN_DIR": str(tmp_path)}, "--offline")
    assert elsewhere.returncode == 2, elsewhere.stdout + elsewhere.stderr
    assert "no orders database" in elsewhere.stderr and "SAGA_RUN_DIR" in elsewhere.stderr


def test_since_takes_an_age_or_a_time(env: dict[str, str], planted: Planted) -> None:
    before = datetime.now(UTC)
    assert (
        before - timedelta(seconds=91) < _moment("90s") <= datetime.now(UTC) - timedelta(seconds=90)
    )
    assert _moment("2h") < before - timedelta(hours=1, minutes=59)
    assert _moment("2026-11-23T10:00:00+01:00") == datetime(2026, 11, 23, 9, tzinfo=UTC)
    assert _moment("2026-11-23T10:00:00").tzinfo is not None

    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    later = _saga(env, "--order", planted.clean, "--since", future, "--json")
    assert later.returncode == 0, later.stderr
    assert json.loads(later.stdout)["checked_orders"] == 0
    bad = _saga(env, "--since", "yesterday")
    assert bad.returncode == 2
    assert "neither an age" in bad.stderr
