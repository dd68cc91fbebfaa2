"""The checker of `saga audit` on snapshots made by hand: each kind of violation is found with
its order and kind, and orders whose sources agree have none. On the real stack, where the
violations are planted for real: ``tests/system/ops/test_audit.py``."""

import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from contracts.activities import SagaPhase
from ops.audit import (
    AuditReport,
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
    ViolationKind,
    find_violations,
)

K = ViolationKind
_T = 1_700_000_000.0


def _event(order_id: str, name: str, ref: str | None = None, **fields: Any) -> SeenEvent:
    return SeenEvent(
        order_id=order_id,
        event_id=str(uuid.uuid4()),
        name=name,
        ref=ref,
        timestamp=datetime.fromtimestamp(_T, UTC),
        **fields,
    )


def _snapshot(order_id: str, *, cancelled: bool) -> AuditSnapshot:
    """One order whose sources agree: completed, or undone after its shipment was scheduled
    with everything given back."""
    pay, res, shp = f"pay-{order_id}", f"res-{order_id}", f"shp-{order_id}"
    charge = LedgerEntry(order_id, "charge", pay, 3000, "EUR", _T)
    forward = [
        _event(order_id, "order.placed"),
        _event(order_id, "payment.completed", pay),
        _event(order_id, "inventory.reserved", res),
        _event(order_id, "shipping.scheduled", shp),
    ]
    if cancelled:
        statuses = ("cancelled", "refunded", "released", "cancelled", SagaPhase.CANCELLED)
        ledger = [charge, replace(charge, kind="refund")]
        ending = [
            _event(order_id, "shipping.cancelled", shp),
            _event(order_id, "inventory.released", res),
            _event(order_id, "payment.refunded", pay),
            _event(order_id, "order.cancelled"),
        ]
    else:
        statuses = ("completed", "captured", "reserved", "dispatched", SagaPhase.COMPLETED)
        ledger = [charge]
        ending = [_event(order_id, "shipping.dispatched", shp), _event(order_id, "order.completed")]
    order, payment, reservation, shipment, phase = statuses
    return AuditSnapshot(
        orders={order_id: OrderRecord(order_id, order, _T)},
        payments={order_id: PaymentRecord(order_id, pay, payment, _T)},
        ledger={order_id: ledger},
        reservations={order_id: ReservationRecord(order_id, res, reservation, _T)},
        shipments={order_id: ShipmentRecord(order_id, shp, shipment, "DHL", _T)},
        sagas={order_id: SagaRecord(order_id, f"order-{order_id}", "COMPLETED", phase)},
        events={order_id: forward + ending},
    )


def _completed(order_id: str = "done") -> AuditSnapshot:
    return _snapshot(order_id, cancelled=False)


def _cancelled(order_id: str = "undone") -> AuditSnapshot:
    return _snapshot(order_id, cancelled=True)


def _returned(order_id: str = "back") -> AuditSnapshot:
    """A completed order (3000 EUR minor units) with three returns whose sources agree:
    ``r-done`` completed (its parcel received, restocked, 1000 refunded), ``r-late`` expired
    (its label voided), ``r-no`` rejected."""
    snapshot = _snapshot(order_id, cancelled=False)
    done = ReturnRecord(order_id, "r-done", "completed", {"SKU-1": 2}, 1000, "EUR", "rfd-1", _T)
    late = ReturnRecord(order_id, "r-late", "expired", {"SKU-2": 1}, 500, "EUR", None, _T)
    refused = ReturnRecord(order_id, "r-no", "rejected", {}, None, None, None, _T)
    refund = LedgerEntry(
        order_id, "return_refund", f"pay-{order_id}", 1000, "EUR", _T, "r-done", "rfd-1"
    )
    snapshot.ledger[order_id].append(refund)
    snapshot.returns[order_id] = [done, late, refused]
    snapshot.restocks[order_id] = [RestockRecord(order_id, "r-done", {"SKU-1": 2}, _T)]
    snapshot.return_labels[order_id] = [
        ReturnLabelRecord(order_id, "r-done", "lbl-1", "received", _T),
        ReturnLabelRecord(order_id, "r-late", "lbl-2", "voided", _T),
    ]
    assert snapshot.events is not None
    snapshot.events[order_id] += [
        _event(order_id, "return.authorized"),
        _event(order_id, "inventory.restocked"),
        _event(order_id, "payment.refunded", "rfd-1"),
        _event(order_id, "return.completed"),
        _event(order_id, "return.expired"),
        _event(order_id, "return.rejected"),
    ]
    return snapshot


def _without(snapshot: AuditSnapshot, order_id: str, *names: str) -> None:
    if snapshot.events is not None:
        snapshot.events[order_id] = [e for e in snapshot.events[order_id] if e.name not in names]


def _renamed(snapshot: AuditSnapshot, order_id: str, name: str, to: str) -> None:
    """The order's ``name`` event seen as a ``to`` event instead."""
    assert snapshot.events is not None
    snapshot.events[order_id] = [
        replace(e, name=to) if e.name == name else e for e in snapshot.events[order_id]
    ]


def _kinds(report: AuditReport, order_id: str) -> set[ViolationKind]:
    return {violation.kind for violation in report.violations_of(order_id)}


def test_orders_whose_sources_agree_have_no_violation() -> None:
    done, undone, back = _completed(), _cancelled(), _returned()
    snapshot = AuditSnapshot(
        orders=done.orders | undone.orders | back.orders,
        payments=done.payments | undone.payments | back.payments,
        ledger=done.ledger | undone.ledger | back.ledger,
        reservations=done.reservations | undone.reservations | back.reservations,
        shipments=done.shipments | undone.shipments | back.shipments,
        returns=back.returns,
        restocks=back.restocks,
        return_labels=back.return_labels,
        sagas=(done.sagas or {}) | (undone.sagas or {}) | (back.sagas or {}),
        events=(done.events or {}) | (undone.events or {}) | (back.events or {}),
    )
    report = find_violations(snapshot)
    assert report.violations == []
    assert report.checked_orders == 3
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
    _renamed(s, "undone", "shipping.cancelled", "shipping.dispatched")


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
    _renamed(s, "done", "order.completed", "order.cancelled")


def _refunded_beyond_the_charge(s: AuditSnapshot) -> None:
    """A second return, still running past its refund: 2500 more than the 3000 charged, with
    the 1000 already refunded."""
    s.returns["back"].append(
        ReturnRecord("back", "r-more", "authorized", {"SKU-1": 5}, 2500, "EUR", None, _T)
    )
    s.ledger["back"].append(
        LedgerEntry("back", "return_refund", "pay-back", 2500, "EUR", _T, "r-more", "rfd-2")
    )
    assert s.events is not None
    s.events["back"].append(_event("back", "payment.refunded", "rfd-2"))


def _restocked_other_lines(s: AuditSnapshot) -> None:
    s.restocks["back"] = [RestockRecord("back", "r-done", {"SKU-1": 3}, _T)]


def _restocked_an_expired_return(s: AuditSnapshot) -> None:
    s.restocks["back"].append(RestockRecord("back", "r-late", {"SKU-2": 1}, _T))


def _restocked_before_the_parcel(s: AuditSnapshot) -> None:
    """A running return restocked while its label is still issued (no parcel yet)."""
    s.returns["back"].append(
        ReturnRecord("back", "r-run", "authorized", {"SKU-2": 1}, 500, "EUR", None, _T)
    )
    s.return_labels["back"].append(ReturnLabelRecord("back", "r-run", "lbl-3", "issued", _T))
    s.restocks["back"].append(RestockRecord("back", "r-run", {"SKU-2": 1}, _T))


def _never_restocked(s: AuditSnapshot) -> None:
    s.restocks["back"] = []


def _return_not_refunded(s: AuditSnapshot) -> None:
    s.ledger["back"] = [e for e in s.ledger["back"] if e.kind != "return_refund"]
    _without(s, "back", "payment.refunded")


def _return_refunded_short(s: AuditSnapshot) -> None:
    s.ledger["back"] = [
        replace(e, amount_minor=900) if e.kind == "return_refund" else e for e in s.ledger["back"]
    ]


def _expired_return_refunded(s: AuditSnapshot) -> None:
    s.ledger["back"].append(
        LedgerEntry("back", "return_refund", "pay-back", 500, "EUR", _T, "r-late", "rfd-3")
    )
    assert s.events is not None
    s.events["back"].append(_event("back", "payment.refunded", "rfd-3"))


def _return_refund_event_lost(s: AuditSnapshot) -> None:
    _without(s, "back", "payment.refunded")


def _stray_return_refund(s: AuditSnapshot) -> None:
    assert s.events is not None
    s.events["back"].append(_event("back", "payment.refunded", "rfd-stray"))


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
        (_returned, _refunded_beyond_the_charge, "back", {K.OVER_REFUNDED}),
        (_returned, _restocked_other_lines, "back", {K.RESTOCK_MISMATCH}),
        (_returned, _restocked_an_expired_return, "back", {K.RESTOCK_MISMATCH}),
        (_returned, _restocked_before_the_parcel, "back", {K.RESTOCK_MISMATCH}),
        (_returned, _never_restocked, "back", {K.RESTOCK_MISMATCH}),
        (_returned, _return_not_refunded, "back", {K.RETURN_REFUND_MISMATCH}),
        (_returned, _return_refunded_short, "back", {K.RETURN_REFUND_MISMATCH}),
        (_returned, _expired_return_refunded, "back", {K.RETURN_REFUND_MISMATCH}),
        (_returned, _return_refund_event_lost, "back", {K.MISSING_EVENT}),
        (_returned, _stray_return_refund, "back", {K.EVENT_WITHOUT_RECORD}),
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


def test_a_return_in_flight_may_be_received_restocked_and_refunded_but_not_completed() -> None:
    """Between the refund and the completion a return is still authorized: not a violation;
    the refund and the restock of each return count against the order as a whole."""
    snapshot = _returned()
    snapshot.returns["back"].append(
        ReturnRecord("back", "r-run", "authorized", {"SKU-2": 1}, 2000, "EUR", None, _T)
    )
    snapshot.return_labels["back"].append(
        ReturnLabelRecord("back", "r-run", "lbl-3", "received", _T)
    )
    snapshot.restocks["back"].append(RestockRecord("back", "r-run", {"SKU-2": 1}, _T))
    # 1000 + 2000: all of the 3000 charged, and no more.
    snapshot.ledger["back"].append(
        LedgerEntry("back", "return_refund", "pay-back", 2000, "EUR", _T, "r-run", "rfd-2")
    )
    assert snapshot.events is not None
    snapshot.events["back"].append(_event("back", "payment.refunded", "rfd-2"))
    assert find_violations(snapshot).violations == []


def test_the_return_rules_name_the_return_and_the_amounts() -> None:
    snapshot = _returned()
    _refunded_beyond_the_charge(snapshot)
    _restocked_other_lines(snapshot)
    details = {v.kind: v.detail for v in find_violations(snapshot).violations}
    assert "refunded 3500 EUR minor units" in details[K.OVER_REFUNDED]
    assert "captured 3000" in details[K.OVER_REFUNDED]
    assert "r-more" in details[K.OVER_REFUNDED]
    assert details[K.RESTOCK_MISMATCH] == (
        "inventory restocked return r-done (3 x SKU-1), but the return (completed) is of 2 x SKU-1"
    )


def test_a_refund_settled_by_hand_is_named_with_the_operators_word() -> None:
    """A return completed after an operator resolved its stuck refund: the ledger has no
    refund of it, which the audit reports (as it reports an undo settled by hand), naming the
    manual refund id and what the operator said."""
    snapshot = _returned()
    _return_not_refunded(snapshot)
    snapshot.returns["back"][0] = replace(snapshot.returns["back"][0], refund_id="manual-r-done")
    assert snapshot.events is not None
    snapshot.events["back"].append(
        _event("back", "order.repaired", "refund", note="resolve_manually by ops (bank transfer)")
    )
    (violation,) = find_violations(snapshot).violations
    assert violation.kind is K.RETURN_REFUND_MISMATCH
    assert "completed with manual-r-done" in violation.detail
    assert "an operator repaired refund: resolve_manually by ops (bank transfer)" in (
        violation.detail
    )


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
