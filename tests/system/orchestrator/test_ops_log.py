"""The operator log on the session stack: every kind of operator action, read through the
API and the CLI after the sagas have ended; a second bulk repair acts on nothing."""

import json
from typing import Any

import httpx

from infra.config.settings import Settings
from orchestrator.api.auth import DEVELOPMENT_PRINCIPAL
from tests.support.cli import run_saga
from tests.support.orders_api import api_client, order_body, place, repair, saga_when, until_ended

_BULK = {
    "action": "retry_now",
    "step": "charge_payment",
    "older_than_seconds": 0,
    "saga_type": "order",
    "operator": "ops-oncall",
    "reason": "the PSP says refunds work again",
    "rate_per_second": 50,
}


async def _bulk(api: httpx.AsyncClient, *, dry_run: bool) -> dict[str, Any]:
    response = await api.post("/sagas/stuck/repair", json={**_BULK, "dry_run": dry_run})
    assert response.status_code == 200, response.text
    report: dict[str, Any] = response.json()
    return report


def _item(report: dict[str, Any], order_id: str) -> dict[str, Any]:
    item: dict[str, Any] = next(i for i in report["items"] if i["order_id"] == order_id)
    return item


async def _log(api: httpx.AsyncClient, **params: str | int) -> list[dict[str, Any]]:
    response = await api.get("/ops-log", params={"page_size": 500, **params})
    assert response.status_code == 200, response.text
    entries: list[dict[str, Any]] = response.json()["entries"]
    return entries


async def test_every_operator_action_is_in_the_log_after_the_sagas_ended(
    stack: Settings, env: dict[str, str]
) -> None:
    async with api_client(stack) as api:
        stuck_id = await place(api, order_body("tok_refundFail", country="AQ", prefix="opslog"))
        cancelled_id = await place(api, order_body(prefix="opslog"))
        cancel = await api.post(
            f"/sagas/{cancelled_id}/cancel",
            json={"reason": "changed my mind", "requested_by": "cust-api"},
        )
        assert cancel.status_code == 202, cancel.text

        def flagged(saga: dict[str, Any]) -> bool:
            charge = next(s for s in saga["saga"]["steps"] if s["name"] == "charge_payment")
            return bool(charge["stuck"]) and saga["saga"]["status"] == "COMPENSATING"

        await saga_when(api, stuck_id, flagged)
        # Already undoing: the saga ignores the cancel, and says so in its notes.
        ignored = await api.post(
            f"/sagas/{stuck_id}/cancel", json={"reason": "too late", "requested_by": "cust-api"}
        )
        assert ignored.status_code == 202, ignored.text

        dry = await _bulk(api, dry_run=True)
        assert _item(dry, stuck_id)["outcome"] == "would-repair"
        first = await _bulk(api, dry_run=False)
        assert _item(first, stuck_id)["outcome"] == "repaired"
        second = await _bulk(api, dry_run=False)
        # The retry's round (5 attempts, 15 s of backoff) is still running: nothing to do.
        repaired_first = {i["saga_id"] for i in first["items"] if i["outcome"] == "repaired"}
        assert all(
            item["outcome"] == "skipped"
            for item in second["items"]
            if item["saga_id"] in repaired_first
        ), second
        assert "already retried in this stuck episode" in _item(second, stuck_id)["detail"]
        saga = (await api.get(f"/sagas/{stuck_id}")).json()
        assert [n["kind"] for n in saga["saga"]["notes"]].count("retry-now") == 1
        # One saga by hand is the operator's own call: the saga takes it.
        again = await repair(api, stuck_id, "retry_now", "charge_payment", reason="once more")
        assert again.status_code == 200, again.text

        not_stuck = await repair(api, stuck_id, "retry_now", "reserve_stock", reason="try again")
        assert not_stuck.status_code == 409, not_stuck.text
        by_hand = "refunded by hand in the processor's console"
        resolved = await repair(api, stuck_id, "resolve_manually", "charge_payment", by_hand)
        assert resolved.status_code == 200, resolved.text

        # Closed workflows, whatever their timelines hold: a cancel that arrives before the
        # first step (under load it can) undoes nothing, so no order.cancelled is written.
        for order_id in (stuck_id, cancelled_id):
            ended = await until_ended(api, order_id, closing_event=False)
            assert ended["saga"]["status"] == "CANCELLED"

        entries = await _log(api, order_id=stuck_id)
        assert [(e["action"], e["outcome"]) for e in entries] == [
            ("resolve_manually", "accepted"),
            ("retry_now", "refused"),
            ("retry_now", "accepted"),
            ("retry_now", "accepted"),
            ("cancel", "refused"),
        ]
        assert all(e["principal"] == DEVELOPMENT_PRINCIPAL for e in entries)
        assert all(e["order_id"] == stuck_id and e["saga_type"] == "order" for e in entries)
        resolve, refused, by_hand_retry, retried, cancel_refused = entries
        assert resolve["reason"] == f"{by_hand} (on behalf of ops-oncall)"
        assert resolve["step"] == "charge_payment"
        assert "not stuck" in refused["detail"]
        assert by_hand_retry["bulk_id"] is None
        assert by_hand_retry["reason"] == "once more (on behalf of ops-oncall)"
        assert retried["bulk_id"] == first["bulk_id"]
        assert "already COMPENSATING" in cancel_refused["detail"]
        assert [(e["action"], e["outcome"]) for e in await _log(api, order_id=cancelled_id)] == [
            ("cancel", "accepted")
        ]

        bulks = {
            e["bulk_id"]: e
            for e in await _log(api, saga_type="order", since_seconds=600)
            if e["action"] == "bulk_repair"
        }
        for report, dry_run, outcome in (
            (dry, True, "would-repair"),
            (first, False, "repaired"),
            (second, False, "skipped"),
        ):
            entry = bulks[report["bulk_id"]]
            assert entry["selection"] == {
                "action": "retry_now",
                "step": "charge_payment",
                "saga_type": "order",
                "older_than_seconds": 0,
                "limit": 100,
                "rate_per_second": 50.0,
                "dry_run": dry_run,
            }
            assert entry["items"] == report["items"]
            assert _item(entry, stuck_id)["outcome"] == outcome
            assert entry["reason"] == f"{_BULK['reason']} (on behalf of ops-oncall)"

    shown = run_saga(env, "ops-log", "--order", stuck_id, "--json")
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["entries"] == entries
    table = run_saga(env, "ops-log", "--order", cancelled_id)
    assert table.returncode == 0, table.stdout + table.stderr
    assert "cancel" in table.stdout and "accepted" in table.stdout
    assert f"order {cancelled_id}" in table.stdout
