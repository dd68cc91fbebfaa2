"""The checks: a pure function from what was read to what is wrong.

An order's end comes from its saga (Temporal), or, when Temporal was not read or no longer
holds the saga, from the order service's own record. A saga still running is in flight and
not checked. Every other order is checked against its services' records and its events:

- money, stock and shipment on a cancelled order must all be given back;
- a completed order has exactly one charge, one reservation and one shipment, all standing;
- no order is captured twice (the ledger, or ``payment.completed`` for two payments);
- every record implies its event, on Kafka or still in its service's outbox;
- every event that was on Kafka before the databases were read has its record;
- returns: no order is refunded more than was captured (its own refund and its returns'
  together); a return is restocked only once its parcel arrived (it completed, or its saga runs
  past the pivot: never a rejected or expired one), with exactly its lines; every completed
  return has exactly one refund, of its amount, and no rejected or expired return has one.

The services record a return's steps in the saga's order (the parcel received, the restock,
the refund, the completion), and the databases are read the other way round (the orders
first, shipping last): a return read as completed had all its records written before they
were read, so the return rules hold on a live stack without waiting for the return sagas.
"""

from collections import defaultdict
from collections.abc import Iterator

from contracts.activities import SagaPhase
from ops.audit.report import AuditReport, Violation, ViolationKind
from ops.audit.snapshot import AuditSnapshot, LedgerEntry, ReturnRecord, SeenEvent
from orchestrator.workflows.return_saga import ReturnSteps, manual_refund_id

__all__ = ["find_violations"]

_FINAL = (SagaPhase.COMPLETED, SagaPhase.CANCELLED)
_ACTIVE_SHIPMENT = ("scheduled", "dispatched")
_RESERVATION_EVENTS = {
    "inventory.reserved": ("reserved", "released"),
    "inventory.released": ("released",),
    "inventory.unavailable": ("refused",),
}
"""The events a reservation implies, by its status."""
_SHIPMENT_EVENTS = {
    "shipping.scheduled": ("scheduled", "dispatched", "cancelled"),
    "shipping.dispatched": ("dispatched",),
    "shipping.cancelled": ("cancelled",),
    "shipping.failed": ("refused",),
}
"""The events a shipment implies, by its status."""
_MAY_BE_RECEIVED = ("authorized", "completed")
"""The statuses of a return that may have a restock and a refund: completed, or authorized
(its saga still runs, perhaps past the parcel's arrival)."""
_ORDER_STATUS = {"completed": SagaPhase.COMPLETED, "cancelled": SagaPhase.CANCELLED}
_KAFKA_CHECKS = (ViolationKind.MISSING_EVENT, ViolationKind.EVENT_WITHOUT_RECORD)
_TEMPORAL_CHECKS = (ViolationKind.SAGA_UNFINISHED, ViolationKind.STATUS_MISMATCH)
_UNDOING_STEP = {
    ViolationKind.CHARGED_NOT_REFUNDED: "charge_payment",
    ViolationKind.STOCK_NOT_RESTORED: "reserve_stock",
    ViolationKind.SHIPMENT_ACTIVE: "schedule_shipment",
}


def find_violations(snapshot: AuditSnapshot) -> AuditReport:
    """Check every order of ``snapshot``; checks whose source was not read are skipped."""
    skipped: dict[ViolationKind, str] = {}
    if snapshot.events is None:
        skipped |= dict.fromkeys(_KAFKA_CHECKS, "Kafka was not read")
    if snapshot.sagas is None:
        skipped |= dict.fromkeys(_TEMPORAL_CHECKS, "Temporal was not read")
    violations: list[Violation] = []
    in_flight: list[str] = []
    checked = 0
    for order_id in sorted(snapshot.order_ids()):
        order = _Order(snapshot, order_id)
        if order.in_flight:
            in_flight.append(order_id)
            continue
        checked += 1
        violations.extend(order.violations())
    counts = {kind: 0 for kind in ViolationKind if kind not in skipped}
    for violation in violations:
        counts[violation.kind] += 1
    return AuditReport(
        checked_orders=checked,
        in_flight=in_flight,
        violations=violations,
        sources=snapshot.sources,
        counts=counts,
        skipped_checks=skipped,
        offline=snapshot.sagas is None and snapshot.events is None,
    )


class _Order:
    """One order's records side by side, and the checks on them."""

    def __init__(self, snapshot: AuditSnapshot, order_id: str) -> None:
        self.order_id = order_id
        self.saga = snapshot.sagas.get(order_id) if snapshot.sagas is not None else None
        self.temporal_read = snapshot.sagas is not None
        self.record = snapshot.orders.get(order_id)
        self.payment = snapshot.payments.get(order_id)
        ledger = snapshot.ledger.get(order_id, [])
        self.charges = [entry for entry in ledger if entry.kind == "charge"]
        self.refunds = [entry for entry in ledger if entry.kind == "refund"]
        self.return_refunds = [entry for entry in ledger if entry.kind == "return_refund"]
        self.returns = {record.return_id: record for record in snapshot.returns.get(order_id, ())}
        self.restocks = {record.return_id: record for record in snapshot.restocks.get(order_id, ())}
        self.labels = {
            record.return_id: record for record in snapshot.return_labels.get(order_id, ())
        }
        self.reservation = snapshot.reservations.get(order_id)
        self.shipment = snapshot.shipments.get(order_id)
        self.events: list[SeenEvent] | None = (
            snapshot.events.get(order_id, []) if snapshot.events is not None else None
        )

    @property
    def in_flight(self) -> bool:
        """Its saga still runs (or, without its saga, its order record says ``placed``)."""
        if self.saga is not None:
            return self.saga.running
        return self.record is not None and self.record.status == "placed"

    @property
    def status(self) -> SagaPhase | None:
        """How the order ended: COMPLETED, CANCELLED, or None if unknown or unfinished."""
        if self.saga is not None:
            return self.saga.saga_status if self.saga.saga_status in _FINAL else None
        return _ORDER_STATUS.get(self.record.status) if self.record is not None else None

    def violations(self) -> Iterator[Violation]:
        if self.status is SagaPhase.CANCELLED:
            yield from self._cancelled()
        if self.status is SagaPhase.COMPLETED:
            yield from self._completed()
        yield from self._double_charge()
        yield from self._over_refunded()
        yield from self._restocks()
        yield from self._return_refunds()
        if self.events is not None:
            yield from self._missing_events(self.events)
            yield from self._events_without_record(self.events)
        if self.temporal_read:
            yield from self._saga_end()

    def _violation(self, kind: ViolationKind, detail: str) -> Violation:
        return Violation(order_id=self.order_id, kind=kind, detail=detail)

    # --- Records against the order's end ---------------------------------------------------

    def _cancelled(self) -> Iterator[Violation]:
        end = f"the order was cancelled ({self._status_source()})"
        if len(self.charges) > len(self.refunds):
            yield self._with_repair(
                ViolationKind.CHARGED_NOT_REFUNDED,
                f"{end}, but the ledger holds {_entries(self.charges, 'charge')} and "
                f"{_entries(self.refunds, 'refund')}",
            )
        reservation = self.reservation
        if reservation is not None and reservation.status == "reserved":
            yield self._with_repair(
                ViolationKind.STOCK_NOT_RESTORED,
                f"{end}, but reservation {reservation.reservation_id} is still reserved "
                "(never released)",
            )
        shipment = self.shipment
        if shipment is not None and shipment.status in _ACTIVE_SHIPMENT:
            yield self._with_repair(
                ViolationKind.SHIPMENT_ACTIVE,
                f"{end}, but shipment {shipment.shipment_id} ({shipment.carrier}) is "
                f"{shipment.status}, not cancelled",
            )

    def _completed(self) -> Iterator[Violation]:
        problems = []
        # Two charges or more are a double charge, reported as one.
        if not self.charges:
            problems.append("the ledger holds no charge")
        if self.refunds:
            problems.append(f"the ledger holds {_entries(self.refunds, 'refund')}")
        reservation = self.reservation
        if reservation is None:
            problems.append("the inventory service has no reservation")
        elif reservation.status != "reserved":
            problems.append(f"reservation {reservation.reservation_id} is {reservation.status}")
        shipment = self.shipment
        if shipment is None:
            problems.append("the shipping service has no shipment")
        elif shipment.status not in _ACTIVE_SHIPMENT:
            problems.append(f"shipment {shipment.shipment_id} is {shipment.status}")
        if problems:
            yield self._violation(
                ViolationKind.COMPLETED_INCOMPLETE,
                f"the order completed ({self._status_source()}), but " + "; ".join(problems),
            )

    def _double_charge(self) -> Iterator[Violation]:
        evidence = []
        if len(self.charges) > 1:
            evidence.append(f"the ledger holds {_entries(self.charges, 'charge')}")
        captured = sorted(
            {event.ref or "?" for event in self.events or () if event.name == "payment.completed"}
        )
        if len(captured) > 1:
            evidence.append(
                f"Kafka carries payment.completed for {len(captured)} payments "
                f"({', '.join(captured)})"
            )
        if evidence:
            yield self._violation(ViolationKind.DOUBLE_CHARGE, "; ".join(evidence))

    # --- Returns -------------------------------------------------------------------------------

    def _over_refunded(self) -> Iterator[Violation]:
        captured: dict[str, int] = defaultdict(int)
        refunded: dict[str, int] = defaultdict(int)
        for entry in self.charges:
            captured[entry.currency] += entry.amount_minor
        for entry in self.refunds + self.return_refunds:
            refunded[entry.currency] += entry.amount_minor
        for currency, amount in sorted(refunded.items()):
            if amount > captured[currency]:
                entries = [
                    _entry(entry)
                    for entry in self.refunds + self.return_refunds
                    if entry.currency == currency
                ]
                yield self._violation(
                    ViolationKind.OVER_REFUNDED,
                    f"the ledger refunded {amount} {currency} minor units "
                    f"({', '.join(entries)}), but captured {captured[currency]} "
                    f"({_entries(self.charges, 'charge')})",
                )

    def _restocks(self) -> Iterator[Violation]:
        for return_id, restock in sorted(self.restocks.items()):
            put_back = f"inventory restocked return {return_id} ({_lines(restock.lines)})"
            decided = self.returns.get(return_id)
            if decided is None:
                yield self._violation(
                    ViolationKind.RESTOCK_MISMATCH,
                    f"{put_back}, but the order service has no such return of the order",
                )
                continue
            if decided.status not in _MAY_BE_RECEIVED:
                yield self._violation(
                    ViolationKind.RESTOCK_MISMATCH,
                    f"{put_back}, but the return was {decided.status}: its parcel never arrived",
                )
                continue
            problems = []
            if restock.lines != decided.lines:
                problems.append(f"the return ({decided.status}) is of {_lines(decided.lines)}")
            label = self.labels.get(return_id)
            if label is None:
                problems.append("the shipping service issued no label for it")
            elif label.status != "received":
                problems.append(
                    f"its label {label.label_id} is {label.status}: the parcel never arrived"
                )
            if problems:
                yield self._violation(
                    ViolationKind.RESTOCK_MISMATCH, f"{put_back}, but " + "; ".join(problems)
                )
        for return_id, decided in sorted(self.returns.items()):
            if decided.status == "completed" and return_id not in self.restocks:
                yield self._violation(
                    ViolationKind.RESTOCK_MISMATCH,
                    f"return {return_id} completed ({_lines(decided.lines)}), but inventory "
                    "never restocked it",
                )

    def _return_refunds(self) -> Iterator[Violation]:
        by_return: dict[str, list[LedgerEntry]] = defaultdict(list)
        for entry in self.return_refunds:
            by_return[entry.return_id or "?"].append(entry)
        for return_id, decided in sorted(self.returns.items()):
            if decided.status == "completed":
                problem = _refund_problem(decided, by_return.get(return_id, []))
                if problem:
                    detail = f"return {return_id} completed, owed {_amount(decided)}, but {problem}"
                    if decided.refund_id == manual_refund_id(return_id):
                        detail += self._repairs(ReturnSteps.REFUND)
                    yield self._violation(ViolationKind.RETURN_REFUND_MISMATCH, detail)
        for return_id, entries in sorted(by_return.items()):
            known = self.returns.get(return_id)
            if known is None or known.status not in _MAY_BE_RECEIVED:
                was = (
                    "the order service has no such return of the order"
                    if known is None
                    else f"the return was {known.status}"
                )
                yield self._violation(
                    ViolationKind.RETURN_REFUND_MISMATCH,
                    f"the ledger holds {', '.join(_entry(entry) for entry in entries)}, but {was}",
                )

    def _saga_end(self) -> Iterator[Violation]:
        saga, record = self.saga, self.record
        if saga is None:
            return
        if saga.saga_status not in _FINAL:
            if saga.saga_status is None and not self._has_traces():
                return  # ended before its first step: nothing to finish or undo
            yield self._violation(
                ViolationKind.SAGA_UNFINISHED,
                f"Temporal closed the saga as {saga.execution_status} while it was "
                f"{saga.saga_status or 'not started'} (step {saga.saga_step or '-'}): "
                "nothing will finish or undo it",
            )
            return
        ended = saga.saga_status
        if record is None:
            # A saga whose order was never recorded (place_order failed) is cancelled.
            if saga.saga_status is SagaPhase.COMPLETED:
                yield self._violation(
                    ViolationKind.STATUS_MISMATCH,
                    f"the saga ended {ended}, but the order service has no record of the order",
                )
        elif _ORDER_STATUS.get(record.status) is not saga.saga_status:
            yield self._violation(
                ViolationKind.STATUS_MISMATCH,
                f"the saga ended {ended}, but the order service's record says {record.status}",
            )

    def _has_traces(self) -> bool:
        """Some service recorded something of the order, or some event names it."""
        return bool(
            self.record
            or self.payment
            or self.charges
            or self.refunds
            or self.reservation
            or self.shipment
            or self.events
        )

    # --- Records against events ---------------------------------------------------------------

    def _implied_events(self) -> Iterator[tuple[str, str | None, str]]:
        """(event name, what it is about, the record that implies it) for every record."""
        for entry in self.charges:
            yield "payment.completed", entry.payment_id, f"the ledger's {_entry(entry)}"
        for entry in self.refunds:
            yield "payment.refunded", entry.payment_id, f"the ledger's {_entry(entry)}"
        for entry in self.return_refunds:
            yield "payment.refunded", entry.refund_id, f"the ledger's {_entry(entry)}"
        payment = self.payment
        if payment is not None and payment.status == "declined":
            yield "payment.failed", payment.payment_id, f"declined payment {payment.payment_id}"
        if (reservation := self.reservation) is not None:
            rid, status = reservation.reservation_id, reservation.status
            yield from _implied_by("reservation", rid, status, _RESERVATION_EVENTS)
        if (shipment := self.shipment) is not None:
            sid, status = shipment.shipment_id, shipment.status
            yield from _implied_by("shipment", sid, status, _SHIPMENT_EVENTS)
        record = self.record
        if record is not None:
            what = f"the order record ({record.status})"
            yield "order.placed", None, what
            if record.status in ("completed", "cancelled"):
                yield f"order.{record.status}", None, what

    def _missing_events(self, events: list[SeenEvent]) -> Iterator[Violation]:
        seen = {(event.name, event.ref) for event in events}
        # Events of refusals and of the order service name no id of a record: any will do.
        seen |= {(event.name, None) for event in events}
        for name, ref, record in self._implied_events():
            if (name, ref) in seen:
                continue
            about = f" for {ref}" if ref is not None else ""
            yield self._violation(
                ViolationKind.MISSING_EVENT,
                f"{record} implies {name}{about}, but it is neither on Kafka nor in the "
                "service's outbox",
            )

    def _events_without_record(self, events: list[SeenEvent]) -> Iterator[Violation]:
        unbacked: dict[tuple[str, str | None], int] = defaultdict(int)
        for event in events:
            # An event that reached Kafka after the databases were read may have a record
            # they did not show yet; one still in an outbox is a record itself.
            if event.settled and not event.pending and not self._backs(event):
                unbacked[event.name, event.ref] += 1
        for (name, ref), count in sorted(unbacked.items(), key=lambda item: str(item[0])):
            about = f" for {ref}" if ref is not None else ""
            copies = f"{count} events " if count > 1 else ""
            yield self._violation(
                ViolationKind.EVENT_WITHOUT_RECORD,
                f"{copies}{name}{about} is on Kafka, but {self._record_of(name)}",
            )

    def _backs(self, event: SeenEvent) -> bool:
        """A record of this order stands behind ``event``."""
        ref, payment = event.ref, self.payment
        match event.name:
            case "payment.completed":
                return any(entry.payment_id == ref for entry in self.charges)
            case "payment.refunded":
                # The order's own refund names its payment; a return's, its refund.
                return any(entry.payment_id == ref for entry in self.refunds) or any(
                    entry.refund_id == ref for entry in self.return_refunds
                )
            case "payment.failed":
                return (
                    payment is not None
                    and payment.payment_id == ref
                    and payment.status == "declined"
                )
            # A refusal names no reservation or shipment: a refused one has no id.
            case "inventory.unavailable":
                return self._reservation_is(None, "refused")
            case "shipping.failed":
                return self._shipment_is(None, "refused")
            case name if name in _RESERVATION_EVENTS:
                return self._reservation_is(ref, *_RESERVATION_EVENTS[name])
            case name if name in _SHIPMENT_EVENTS:
                return self._shipment_is(ref, *_SHIPMENT_EVENTS[name])
            case "order.placed":
                return self.record is not None
            case "order.completed" | "order.cancelled":
                return self.record is not None and f"order.{self.record.status}" == event.name
        # order.repaired and events of later versions name no record of their own.
        return True

    def _reservation_is(self, reservation_id: str | None, *statuses: str) -> bool:
        reservation = self.reservation
        return (
            reservation is not None
            and reservation.reservation_id == reservation_id
            and reservation.status in statuses
        )

    def _shipment_is(self, shipment_id: str | None, *statuses: str) -> bool:
        shipment = self.shipment
        return (
            shipment is not None
            and shipment.shipment_id == shipment_id
            and shipment.status in statuses
        )

    def _record_of(self, event_name: str) -> str:
        """What the service that owns ``event_name`` holds for the order, in words."""
        domain = event_name.partition(".")[0]
        if domain == "payment":
            if self.payment is None:
                return "the payment service has no payment for the order"
            return (
                f"the ledger has payment {self.payment.payment_id} {self.payment.status} with "
                f"{_entries(self.charges, 'charge')} and {_entries(self.refunds, 'refund')}"
            )
        if domain == "inventory":
            reservation = self.reservation
            if reservation is None:
                return "the inventory service has no reservation for the order"
            return f"reservation {reservation.reservation_id} is {reservation.status}"
        if domain == "shipping":
            shipment = self.shipment
            if shipment is None:
                return "the shipping service has no shipment for the order"
            return f"shipment {shipment.shipment_id} is {shipment.status}"
        if self.record is None:
            return "the order service has no record of the order"
        return f"the order service's record says {self.record.status}"

    # --- Wording ------------------------------------------------------------------------------

    def _status_source(self) -> str:
        if self.saga is not None:
            return "its saga ended " + (self.saga.saga_status or "?")
        return "its order record says so; Temporal " + (
            "no longer holds its saga" if self.temporal_read else "was not read"
        )

    def _with_repair(self, kind: ViolationKind, detail: str) -> Violation:
        """``detail``, plus what an operator said when settling the undo by hand, if one did."""
        return self._violation(kind, detail + self._repairs(_UNDOING_STEP[kind]))

    def _repairs(self, step: str) -> str:
        """What operators said when they repaired ``step`` of the order's sagas, if any did."""
        notes = [
            event.note
            for event in self.events or ()
            if event.name == "order.repaired" and event.ref == step and event.note
        ]
        return f"; an operator repaired {step}: " + "; ".join(notes) if notes else ""


def _implied_by(
    record: str, ref: str | None, status: str, events: dict[str, tuple[str, ...]]
) -> Iterator[tuple[str, str | None, str]]:
    """(event name, what it is about, the record) for each of ``events`` that a service's
    ``record`` implies in ``status``; the event of a refusal names no id."""
    if status == "refused":
        ref, what = None, f"a refused {record}"
    else:
        what = f"{record} {ref} ({status})"
    for name, statuses in events.items():
        if status in statuses:
            yield name, ref, what


def _entry(entry: LedgerEntry) -> str:
    money = f"{entry.amount_minor} {entry.currency} minor units"
    if entry.kind == "return_refund":
        return f"refund {entry.refund_id} of return {entry.return_id} ({money})"
    return f"{entry.kind} of {entry.payment_id} ({money})"


def _amount(decided: ReturnRecord) -> str:
    return f"{decided.amount_minor} {decided.currency} minor units"


def _lines(units: dict[str, int]) -> str:
    if not units:
        return "no lines"
    return ", ".join(f"{quantity} x {sku}" for sku, quantity in sorted(units.items()))


def _refund_problem(decided: ReturnRecord, entries: list[LedgerEntry]) -> str | None:
    """What is wrong with the ledger's refunds of a completed return, None if nothing."""
    if not entries:
        if decided.refund_id == manual_refund_id(decided.return_id):
            return (
                f"the ledger holds no refund of it: it completed with {decided.refund_id}, "
                "its refund settled by an operator outside the ledger"
            )
        return "the ledger holds no refund of it"
    if len(entries) > 1:
        return f"the ledger holds {len(entries)} refunds of it: " + ", ".join(
            _entry(entry) for entry in entries
        )
    (entry,) = entries
    problems = []
    if (entry.amount_minor, entry.currency) != (decided.amount_minor, decided.currency):
        problems.append(f"the ledger's {_entry(entry)} is not that")
    if decided.refund_id is not None and entry.refund_id != decided.refund_id:
        problems.append(
            f"it names refund {decided.refund_id} and the ledger's is {entry.refund_id}"
        )
    return "; ".join(problems) or None


def _entries(entries: list[LedgerEntry], kind: str) -> str:
    if not entries:
        return f"no {kind}"
    if len(entries) == 1:
        return _entry(entries[0])
    return f"{len(entries)} {kind}s (" + ", ".join(entry.payment_id for entry in entries) + ")"
