"""Bearer tokens and scopes on the real API: 401 without a known token, 403 without the
route's scope, the work done with it, who did it recorded; and `saga token`. The tokens and
their checks without a stack: ``tests/unit/orchestrator/test_auth.py``."""

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from infra.config.api_tokens import Scope, read_dev_token
from infra.config.settings import Settings
from tests.support.cli import run_saga, without_settings
from tests.support.orders_api import order_body
from tests.support.stacks import scoped_token_name

_ORDER_ID = "auth-no-such-order"


@dataclass(frozen=True)
class _Route:
    """One guarded route: how to call it and the scope it needs."""

    method: str
    path: str
    scope: Scope
    body: dict[str, Any] | None = None

    def call(
        self, client: httpx.AsyncClient, headers: dict[str, str] | None = None
    ) -> Awaitable[httpx.Response]:
        return client.request(self.method, self.path, json=self.body, headers=headers)


# One of each route family.
_GUARDED = [
    _Route("POST", "/orders", Scope.ORDERS_PLACE, {}),
    _Route("GET", "/sagas", Scope.SAGAS_READ),
    _Route("GET", "/sagas/stuck", Scope.SAGAS_READ),
    _Route("GET", f"/sagas/{_ORDER_ID}", Scope.SAGAS_READ),
    _Route("GET", f"/sagas/{_ORDER_ID}/events", Scope.SAGAS_READ),
    _Route("POST", f"/sagas/{_ORDER_ID}/cancel", Scope.SAGAS_OPERATE, {"reason": "r"}),
    _Route("POST", f"/sagas/{_ORDER_ID}/repair", Scope.SAGAS_OPERATE, {"reason": "r"}),
    _Route("POST", "/sagas/stuck/repair", Scope.SAGAS_OPERATE, {"reason": "r"}),
    _Route("GET", "/ops-log", Scope.SAGAS_READ),
    _Route("POST", f"/orders/{_ORDER_ID}/returns", Scope.ORDERS_PLACE, {}),
    _Route("GET", f"/returns/{_ORDER_ID}", Scope.SAGAS_READ),
    _Route("GET", f"/returns/{_ORDER_ID}/events", Scope.SAGAS_READ),
    _Route("POST", f"/returns/{_ORDER_ID}/repair", Scope.SAGAS_OPERATE, {"reason": "r"}),
]


@pytest.fixture(params=_GUARDED, ids=lambda route: f"{route.method} {route.path}")
def route(request: pytest.FixtureRequest) -> _Route:
    """Each guarded route in turn."""
    guarded: _Route = request.param
    return guarded


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def anonymous(stack: Settings) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the stack's API that sends no token of its own."""
    async with httpx.AsyncClient(base_url=stack.api_url, timeout=30) as client:
        yield client


def _order(customer: str = "cust-auth") -> dict[str, Any]:
    return order_body(prefix="auth", customer_id=customer)


async def test_no_token_or_an_unknown_one_is_a_401(
    anonymous: httpx.AsyncClient, route: _Route
) -> None:
    """Without a token the answer says how to send one; an unknown token is refused alike."""
    missing = await route.call(anonymous)
    assert missing.status_code == 401, missing.text
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "Authorization: Bearer" in missing.json()["detail"]
    for header in ("Bearer " + "x" * 43, "Basic dXNlcjpwYXNz", "Bearer"):
        unknown = await route.call(anonymous, {"Authorization": header})
        assert unknown.status_code == 401, (header, unknown.text)
        assert unknown.headers["www-authenticate"].startswith("Bearer")


async def test_a_token_without_the_scope_is_a_403_naming_it(
    anonymous: httpx.AsyncClient, scoped_tokens: dict[Scope, str], route: _Route
) -> None:
    for other, token in scoped_tokens.items():
        if other is route.scope:
            continue
        answer = await route.call(anonymous, _bearer(token))
        assert answer.status_code == 403, (other, answer.text)
        detail = answer.json()["detail"]
        assert repr(route.scope.value) in detail
        assert repr(scoped_token_name(other)) in detail


async def test_the_right_scope_gets_past_the_guard(
    anonymous: httpx.AsyncClient, scoped_tokens: dict[Scope, str], route: _Route
) -> None:
    """With its scope, the request reaches the route: what it answers is no 401 or 403."""
    answer = await route.call(anonymous, _bearer(scoped_tokens[route.scope]))
    assert answer.status_code not in (401, 403), answer.text


async def test_each_scope_does_its_work_and_the_operator_is_recorded(
    anonymous: httpx.AsyncClient, scoped_tokens: dict[Scope, str], stack: Settings
) -> None:
    placer = _bearer(scoped_tokens[Scope.ORDERS_PLACE])
    reader = _bearer(scoped_tokens[Scope.SAGAS_READ])
    operator = _bearer(scoped_tokens[Scope.SAGAS_OPERATE])
    body = _order()
    placed = await anonymous.post("/orders", json=body, headers=placer)
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]

    cancel = await anonymous.post(
        f"/sagas/{order_id}/cancel",
        json={"reason": "changed my mind", "requested_by": "cust-auth"},
        headers=operator,
    )
    assert cancel.status_code == 202, cancel.text
    expected = (
        f"cancelled by {scoped_token_name(Scope.SAGAS_OPERATE)}: changed my mind "
        "(on behalf of cust-auth)"
    )
    for _ in range(150):
        view = await anonymous.get(f"/sagas/{order_id}", headers=reader)
        assert view.status_code == 200, view.text
        if expected in json.dumps(view.json()["saga"]):
            break
        await asyncio.sleep(0.2)
    else:
        raise AssertionError(f"{expected!r} is not in the saga: {view.json()['saga']}")

    listed = await anonymous.get("/sagas", params={"customer_id": "cust-auth"}, headers=reader)
    assert listed.status_code == 200, listed.text
    stuck = await anonymous.get("/sagas/stuck", headers=reader)
    assert stuck.status_code == 200, stuck.text
    dry_run = await anonymous.post(
        "/sagas/stuck/repair",
        json={
            "action": "retry_now",
            "step": "charge_payment",
            "older_than_seconds": 3600,
            "operator": "ops",
            "reason": "a dry run",
        },
        headers=operator,
    )
    assert dry_run.status_code == 200, dry_run.text

    # Every POST is logged with the token's name (the API logs JSON lines).
    log = stack.run_dir / "logs" / "api.log"
    placer_name = scoped_token_name(Scope.ORDERS_PLACE)
    for _ in range(50):
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        accepted = [
            line
            for line in lines
            if line.get("orderId") == order_id and line.get("principal") == placer_name
        ]
        if accepted:
            break
        await asyncio.sleep(0.1)
    assert accepted, f"no log line of {order_id} names {placer_name}"


async def test_probes_metrics_and_the_description_stay_open(
    anonymous: httpx.AsyncClient,
) -> None:
    for path in ("/healthz", "/readyz", "/metrics/", "/openapi.json"):
        answer = await anonymous.get(path)
        assert answer.status_code == 200, (path, answer.text)
    description = (await anonymous.get("/openapi.json")).json()
    schemes = description["components"]["securitySchemes"]
    assert {"type": "http", "scheme": "bearer"}.items() <= next(iter(schemes.values())).items()


def test_saga_token_prints_the_development_token_last(stack: Settings, tmp_path: Path) -> None:
    clean = without_settings()
    shown = run_saga({**clean, **stack.as_env()}, "token")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert len(lines) == 2
    assert lines[-1] == read_dev_token(stack.run_dir)

    none = run_saga({**clean, "SAGA_RUN_DIR": str(tmp_path)}, "token")
    assert none.returncode == 1
    assert "run `saga up` first" in none.stderr
