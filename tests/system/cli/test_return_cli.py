"""`saga return start/show` and `--type` on `saga list/stuck` against the real stack, as a
person runs them (as far as a return's saga only has to start)."""

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from tests.support import REPO
from tests.support.cli import refusal, run_saga

_ORDER = REPO / "examples" / "order.json"
_RETURN = REPO / "examples" / "return.json"


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _placed(env: dict[str, str], tmp_path: Path, customer_id: str) -> str:
    """The example order under a fresh id, placed, once its saga has recorded it."""
    body: dict[str, Any] = json.loads(_ORDER.read_text())
    order_id = f"cli-ret-{uuid.uuid4().hex[:12]}"
    body.update(order_id=order_id, customer_id=customer_id)
    path = tmp_path / f"{order_id}.json"
    path.write_text(json.dumps(body))
    _ok(run_saga(env, "start", str(path)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        view = json.loads(_ok(run_saga(env, "show", order_id, "--json")))
        if view["saga"]["steps"][0]["state"] == "done":
            return order_id
        time.sleep(0.3)
    raise AssertionError(f"order {order_id} never recorded")


def _return_file(tmp_path: Path, **fields: Any) -> tuple[str, Path]:
    """The example return under a fresh return id (and ``fields``), written to a file."""
    body: dict[str, Any] = {**json.loads(_RETURN.read_text()), **fields}
    body["return_id"] = f"cli-ret-{uuid.uuid4().hex[:12]}"
    path = tmp_path / f"{body['return_id']}.json"
    path.write_text(json.dumps(body))
    return body["return_id"], path


def test_a_return_is_started_once_and_listed_by_type(env: dict[str, str], tmp_path: Path) -> None:
    """The example return of an order starts a saga; the same file again finds it; `saga list
    --type` lists it apart from its order."""
    customer = f"cust-{uuid.uuid4().hex[:10]}"
    order_id = _placed(env, tmp_path, customer)
    return_id, path = _return_file(tmp_path)

    started = _ok(run_saga(env, "return", "start", str(path), "--order", order_id))
    assert f"return {return_id} of order {order_id}: created" in started
    assert f"/returns/{return_id}/events" in started
    assert f"saga return show {return_id} --follow" in started
    again = json.loads(
        _ok(run_saga(env, "return", "start", str(path), "--order", order_id, "--json"))
    )
    assert again["created"] is False
    assert again["workflow_id"] == f"return-{return_id}"

    # The order named in the file, not on the command line: the same return.
    named = tmp_path / "named.json"
    named.write_text(json.dumps({**json.loads(path.read_text()), "order_id": order_id}))
    assert "existing" in _ok(run_saga(env, "return", "start", str(named)))

    deadline = time.monotonic() + 30
    while True:
        page = json.loads(
            _ok(run_saga(env, "list", "--customer", customer, "--type", "return", "--json"))
        )
        if page["sagas"] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [(s["saga_type"], s["saga_id"], s["order_id"]) for s in page["sagas"]] == [
        ("return", return_id, order_id)
    ]
    orders = _ok(run_saga(env, "list", "--customer", customer, "--type", "order"))
    assert order_id in orders
    assert return_id not in orders
    both = _ok(run_saga(env, "list", "--customer", customer))
    assert "TYPE" in both.splitlines()[0]
    assert return_id in both
    assert order_id in both


def test_bad_returns_are_refused_naming_the_field(env: dict[str, str], tmp_path: Path) -> None:
    """A bad quantity names its field, another body under the same id is a conflict, an
    unknown order or return is named."""
    order_id = _placed(env, tmp_path, "cust-cli-returns")
    _, zero = _return_file(tmp_path, items=[{"sku": "SKU-1001", "quantity": 0}])
    refused = refusal(run_saga(env, "return", "start", str(zero), "--order", order_id))
    assert "items.0.quantity" in refused

    return_id, path = _return_file(tmp_path)
    _ok(run_saga(env, "return", "start", str(path), "--order", order_id))
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**json.loads(path.read_text()), "reason": "broken"}))
    conflict = refusal(run_saga(env, "return", "start", str(other), "--order", order_id))
    assert f"return {return_id!r} was already asked for" in conflict

    nobody = f"nobody-{uuid.uuid4().hex[:12]}"
    _, fresh = _return_file(tmp_path)
    assert f"no order {nobody!r}" in refusal(
        run_saga(env, "return", "start", str(fresh), "--order", nobody)
    )
    assert f"no saga for return {nobody!r}" in refusal(run_saga(env, "return", "show", nobody))


def test_nothing_is_stuck_for_an_hour_of_either_type(env: dict[str, str]) -> None:
    for saga_type in ("order", "return"):
        quiet = _ok(run_saga(env, "stuck", "--type", saga_type, "--older-than", "1h"))
        assert f"no {saga_type} saga stuck for 1h or more" in quiet
        listed = run_saga(env, "stuck", "--type", saga_type, "--older-than", "1h", "--json")
        assert json.loads(_ok(listed)) == []


def test_a_return_is_followed_to_its_end(env: dict[str, str], tmp_path: Path) -> None:
    """`saga return show --follow` prints the return's events as they come and its outcome at
    the end; `--json` shows the same return."""
    order_id = _placed(env, tmp_path, "cust-cli-returns")
    _ok(run_saga(env, "show", order_id, "--follow"))  # the order dispatched and completed
    return_id, path = _return_file(tmp_path)
    _ok(run_saga(env, "return", "start", str(path), "--order", order_id))
    followed = _ok(run_saga(env, "return", "show", return_id, "--follow"))
    lines = followed.splitlines()
    streamed = [
        next(i for i, line in enumerate(lines) if f" {event} " in line)
        for event in ("return.authorized.v1", "inventory.restocked.v1", "return.completed.v1")
    ]
    assert streamed == sorted(streamed), followed
    assert f"return {return_id} of order {order_id}  COMPLETED" in followed
    assert "Web UI: " in followed
    view = json.loads(_ok(run_saga(env, "return", "show", return_id, "--json")))
    assert view["saga"]["outcome"] == "COMPLETED"
    assert view["events"][-1]["event_type"] == "return.completed.v1"


def test_the_demo_returns_part_of_its_order(env: dict[str, str]) -> None:
    """`saga demo --return`: the order completes, one item comes back, refunded."""
    result = run_saga(env, "demo", "--return")
    output = _ok(result)
    assert ": COMPLETED" in output
    assert "return demo-return-" in output
    assert "COMPLETED, refunded" in output
    assert "return.completed.v1" in output
