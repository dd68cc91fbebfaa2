"""`saga start/show/list/stuck/cancel/repair` against the real stack, as a person runs them."""

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support import REPO
from tests.support.cli import refusal, run_saga

_EXAMPLE = REPO / "examples" / "order.json"
PLACED, COMPLETED = "order.placed.v1", "order.completed.v1"
CHARGED, RESERVED = "payment.completed.v1", "inventory.reserved.v1"
SCHEDULED, DISPATCHED = "shipping.scheduled.v1", "shipping.dispatched.v1"


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _order(tmp_path: Path, *, customer_id: str = "cust-cli", quantity: int = 2) -> tuple[str, Path]:
    """The example order under a fresh order id, written to a file: (order id, file)."""
    body: dict[str, Any] = json.loads(_EXAMPLE.read_text())
    order_id = f"cli-{uuid.uuid4().hex[:12]}"
    body.update(order_id=order_id, customer_id=customer_id)
    body["items"][0]["quantity"] = quantity
    path = tmp_path / f"{order_id}.json"
    path.write_text(json.dumps(body))
    return order_id, path


def test_start_then_follow_then_show(env: dict[str, str], tmp_path: Path) -> None:
    """A started order is followed event by event to its end, then shown with its steps."""
    order_id, path = _order(tmp_path)
    started = _ok(run_saga(env, "start", str(path)))
    assert f"order {order_id}: created" in started
    assert f"/sagas/{order_id}/events" in started

    followed = _ok(run_saga(env, "show", order_id, "--follow"))
    lines = followed.splitlines()
    streamed = [
        next(i for i, line in enumerate(lines) if f" {event} " in line)
        for event in (PLACED, CHARGED, RESERVED, SCHEDULED, DISPATCHED, COMPLETED)
    ]
    assert streamed == sorted(streamed), followed
    assert f"order {order_id}  COMPLETED" in followed
    assert "Web UI: " in followed

    view = json.loads(_ok(run_saga(env, "show", order_id, "--json")))
    assert view["order_id"] == order_id
    assert view["saga"]["status"] == "COMPLETED"
    assert view["execution_status"] == "COMPLETED"
    assert [step["state"] for step in view["saga"]["steps"]] == ["done"] * 6
    assert [event["event_type"] for event in view["events"]] == [
        PLACED,
        CHARGED,
        RESERVED,
        SCHEDULED,
        DISPATCHED,
        COMPLETED,
    ]

    shown = _ok(run_saga(env, "show", order_id))
    assert "STEP" in shown
    assert "charge_payment" in shown
    assert COMPLETED in shown
    assert view["links"]["web_ui"] in shown


def test_the_example_order_starts_a_saga(env: dict[str, str]) -> None:
    """The example file is a valid order; without an order id each start is a new saga."""
    first = json.loads(_ok(run_saga(env, "start", str(_EXAMPLE), "--json")))
    second = json.loads(_ok(run_saga(env, "start", str(_EXAMPLE), "--json")))
    assert first["created"] is second["created"] is True
    assert first["order_id"] != second["order_id"]


def test_starting_the_same_order_twice_finds_the_existing_saga(
    env: dict[str, str], tmp_path: Path
) -> None:
    """The same file again (here on standard input) answers `existing`, with the same saga."""
    order_id, path = _order(tmp_path)
    assert f"order {order_id}: created" in _ok(run_saga(env, "start", str(path)))
    again = _ok(run_saga(env, "start", "-", stdin=path.read_text()))
    assert f"order {order_id}: existing" in again
    answer = json.loads(_ok(run_saga(env, "start", str(path), "--json")))
    assert answer["order_id"] == order_id
    assert answer["created"] is False


def test_list_filters_by_customer(env: dict[str, str], tmp_path: Path) -> None:
    """`saga list --customer` lists that customer's sagas and nobody else's."""
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    orders = [_order(tmp_path, customer_id=customer) for _ in range(2)]
    other, other_path = _order(tmp_path)
    for _, path in [*orders, (other, other_path)]:
        _ok(run_saga(env, "start", str(path)))
    mine = {order_id for order_id, _ in orders}

    deadline = time.monotonic() + 30
    while True:
        page = json.loads(_ok(run_saga(env, "list", "--customer", customer, "--json")))
        listed = {saga["order_id"] for saga in page["sagas"]}
        if listed >= mine or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert listed == mine
    assert {saga["customer_id"] for saga in page["sagas"]} == {customer}

    table = _ok(run_saga(env, "list", "--customer", customer))
    assert all(order_id in table for order_id in mine)
    assert other not in table


def test_a_healthy_stack_has_nothing_stuck_for_an_hour(env: dict[str, str]) -> None:
    """Nothing is stuck for an hour; a bulk repair of it is a dry run that matches nothing."""
    assert json.loads(_ok(run_saga(env, "stuck", "--older-than", "1h", "--json"))) == []
    assert "no saga stuck for 1h or more" in _ok(run_saga(env, "stuck", "--older-than", "3600"))
    bulk = run_saga(
        env,
        *("repair", "--bulk", "--step", "charge_payment", "--older-than", "1h"),
        *("--retry-now", "--reason", "processor back", "--json"),
    )
    report = json.loads(_ok(bulk))
    assert report["dry_run"] is True
    assert report["matched"] == 0
    assert report["items"] == []


def test_an_unknown_order_is_named(env: dict[str, str]) -> None:
    """Cancelling or showing an order that has no saga says so and exits 1."""
    order_id = f"nobody-{uuid.uuid4().hex[:12]}"
    cancel = run_saga(env, "cancel", order_id, "--reason", "changed my mind", "--by", "support")
    assert f"no saga for order {order_id!r}" in refusal(cancel)
    assert f"no saga for order {order_id!r}" in refusal(run_saga(env, "show", order_id))


def test_invalid_input_names_the_field_and_the_reason(env: dict[str, str], tmp_path: Path) -> None:
    """The API's 422 comes back as the field and what is wrong with it."""
    _, path = _order(tmp_path, quantity=0)
    refused = refusal(run_saga(env, "start", str(path)))
    assert "items.0.quantity" in refused
    assert "greater than 0" in refused

    unknown_step = run_saga(env, "repair", "any-order", "--step", "polish", "--retry-now")
    assert unknown_step.returncode == 2  # --reason is missing: argparse's usage error
    unknown_step = run_saga(
        env, "repair", "any-order", "--step", "polish", "--retry-now", "--reason", "why"
    )
    refused = refusal(unknown_step)
    assert "step: " in refused
    assert "charge_payment" in refused


def test_repairing_a_saga_that_is_not_stuck_is_refused(env: dict[str, str], tmp_path: Path) -> None:
    """The saga itself refuses to repair a step that is not stuck."""
    order_id, path = _order(tmp_path)
    _ok(run_saga(env, "start", str(path)))
    repair = run_saga(
        env,
        *("repair", order_id, "--step", "charge_payment", "--retry-now"),
        *("--reason", "just in case", "--operator", "ops"),
    )
    assert "step 'charge_payment' is not stuck" in refusal(repair)
