"""`saga audit` on the real stack, where each kind of violation is planted for real (rows
changed in the services' databases, stray events published on Kafka) on orders of this
module's own, and found with its order and kind. The checker on snapshots made by hand is
tested in ``tests/unit/ops/test_audit.py``."""

import asyncio
import json
import sqlite3
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
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
from contracts.codec import encode_event
from infra.config.settings import Settings, api_headers
from infra.engines.processes import free_port
from ops.audit import (
    AuditReport,
    AuditSourceError,
    ViolationKind,
    run_audit,
)
from runtime import new_producer
from tests.support.cli import run_saga
from tests.support.orders_api import order_body, place, until_ended

K = ViolationKind


def _kinds(report: AuditReport, order_id: str) -> set[ViolationKind]:
    return {violation.kind for violation in report.violations_of(order_id)}


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
    over_refunded: str
    """Completed, then a return of it written into the four stores by hand: its lines
    restocked, its parcel received, its refund 100 above the charge."""
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
            # The refund's payment.refunded was never published: the ledger entry implies it.
            self.over_refunded: {K.OVER_REFUNDED, K.MISSING_EVENT},
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


def _plant_return(stack: Settings, order_id: str) -> None:
    """A completed return of one unit of ``order_id``, consistent in every store (its lines
    restocked, its label received, one refund of its amount) but for its amount: 100 EUR
    minor units more than the order was charged."""
    return_id, refund_id = f"ret-planted-{uuid.uuid4().hex[:8]}", f"rfd-{uuid.uuid4().hex}"
    now = time.time()
    with _writing(stack, "payment") as db:
        payment_id, charged = db.execute(
            "SELECT payment_id, amount_minor FROM ledger_entries"
            " WHERE order_id = ? AND kind = 'charge'",
            (order_id,),
        ).fetchone()
        amount = charged + 100
        db.execute(
            "INSERT INTO ledger_entries (payment_id, order_id, kind, amount_minor, currency,"
            " created_at, return_id, refund_id) VALUES (?, ?, 'return_refund', ?, 'EUR', ?, ?, ?)",
            (payment_id, order_id, amount, now, return_id, refund_id),
        )
    with _writing(stack, "orchestrator") as db:
        db.execute(
            "INSERT INTO returns (return_id, order_id, status, reason, amount_minor, currency,"
            " payment_id, refund_id, requested_at, created_at, updated_at)"
            " VALUES (?, ?, 'completed', 'planted', ?, 'EUR', ?, ?, ?, ?, ?)",
            (return_id, order_id, amount, payment_id, refund_id, now, now, now),
        )
        db.execute(
            "INSERT INTO return_lines (return_id, sku, quantity, unit_price_minor)"
            " VALUES (?, 'SKU-1002', 1, ?)",
            (return_id, amount),
        )
    with _writing(stack, "inventory") as db:
        db.execute(
            "INSERT INTO restocks (return_id, order_id, created_at) VALUES (?, ?, ?)",
            (return_id, order_id, now),
        )
        db.execute(
            "INSERT INTO restock_lines (return_id, sku, quantity) VALUES (?, 'SKU-1002', 1)",
            (return_id,),
        )
    with _writing(stack, "shipping") as db:
        # Received already: the simulated carrier delivers only issued labels.
        db.execute(
            "INSERT INTO return_labels (return_id, order_id, label_id, carrier,"
            " tracking_number, items, reason, status, issued_event_id, issued_at, updated_at)"
            " VALUES (?, ?, ?, 'dhl', 'DHLR1', '[]', 'planted', 'received', ?, ?, ?)",
            (return_id, order_id, f"lbl-{return_id}", str(uuid.uuid4()), now, now),
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
            "over_refunded": _body(),
        }
        ids = {name: await place(api, body) for name, body in bodies.items()}
        statuses = await asyncio.gather(*(_ended(api, order_id) for order_id in ids.values()))
    completed = {"clean", "completed_incomplete", "double_charge", "over_refunded"}
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
    _plant_return(stack, planted.over_refunded)
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
    refunds = " | ".join(v.detail for v in report.violations_of(planted.over_refunded))
    assert "captured 1500" in refunds and "implies payment.refunded for rfd-" in refunds
    assert report.seconds < 30


async def test_offline_the_databases_alone_still_find_what_they_can_prove(
    stack: Settings, planted: Planted
) -> None:
    """Without Temporal and Kafka: the record-against-record violations, nothing about events."""
    report = await run_audit(stack, offline=True, orders=set(planted.expected))
    provable = {
        K.OVER_REFUNDED,
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
    return run_saga(env, "audit", *args, timeout=120)


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
