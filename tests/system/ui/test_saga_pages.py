"""The web pages in a real browser (headless Chromium), on the session's stack.

One module, few page loads: the tests run in order on one browser, and the saga stuck on a
refund is placed by the first so that its retries run out while the others run.
"""

import asyncio
import os
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait
from temporalio.client import Client

from contracts.activities import ORDER_SAGA_WORKFLOW
from infra.config.api_tokens import Scope
from infra.config.settings import Settings
from orchestrator.saga import Step
from orchestrator.workflows.order_saga import ORDER_SAGA
from tests.support.orders_api import order_body, place, run_path, saga_when
from tests.support.saga_paths import SAGA_PATHS
from tests.system.ui.conftest import dev_token as _dev_token

_T = TypeVar("_T")
_PATHS = ["happy", "declined", "no stock", "unsupported destination"]
_REFUND_STEP = "charge_payment"


def _wait(browser: webdriver.Chrome, what: Callable[[webdriver.Chrome], _T], seconds: float) -> _T:
    """``what(browser)`` once it is true; a page being replaced meanwhile is looked at again."""
    return WebDriverWait(
        browser,
        seconds,
        poll_frequency=0.2,
        ignored_exceptions=(NoSuchElementException, StaleElementReferenceException),
    ).until(what)


def _sign_in(browser: webdriver.Chrome, stack: Settings, token: str) -> None:
    """Submit the sign-in form and wait for the page it leads to.

    A click returns before the form's answer has replaced the page: a ``get`` issued at once
    can be overtaken by the sign-in's redirect to the map.
    """
    browser.get(f"{stack.api_url}/ui/signin")
    browser.delete_all_cookies()
    field = browser.find_element(By.ID, "token")
    field.send_keys(token)
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    _wait(browser, staleness_of(field), 15)
    _wait(browser, lambda b: b.execute_script("return document.readyState") == "complete", 15)


@pytest.fixture(scope="module")
async def stuck_order(api_module: httpx.AsyncClient) -> str:
    """An order whose refund keeps failing: its saga stays compensating on charge_payment."""
    return await place(api_module, order_body("tok_refundFail", country="AQ", prefix="ui"))


async def test_signing_in_takes_a_known_token_and_sets_a_session_cookie(
    browser: webdriver.Chrome,
    stack: Settings,
    scoped_tokens: dict[Scope, str],
    stuck_order: str,
) -> None:
    _sign_in(browser, stack, "not-a-token-of-this-api")
    error = _wait(browser, lambda b: b.find_element(By.ID, "signin-error"), 10)
    assert "not one this API accepts" in error.text
    assert browser.get_cookie("saga_session") is None
    _sign_in(browser, stack, scoped_tokens[Scope.ORDERS_PLACE])  # known, but may not look
    error = _wait(browser, lambda b: b.find_element(By.ID, "signin-error"), 10)
    assert "lacks the scope 'sagas:read'" in error.text
    assert browser.get_cookie("saga_session") is None

    _sign_in(browser, stack, _dev_token(stack))
    _wait(browser, lambda b: b.current_url.endswith("/ui/map/order"), 10)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Order saga map"
    cookie = browser.get_cookie("saga_session")
    assert cookie is not None
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert _dev_token(stack) not in cookie["value"]

    unknown = await _as_session(stack, browser, "GET", "/ui/map/shipment")
    assert unknown.status_code == 422
    assert "frame-ancestors 'none'" in unknown.headers["content-security-policy"]
    assert unknown.headers["content-type"].startswith("text/html")
    assert "Not understood" in unknown.text


def _map_cells(browser: webdriver.Chrome) -> dict[str, int]:
    cells: dict[str, int] = {}
    for cell in browser.find_elements(By.CSS_SELECTOR, "[data-count]"):
        number: WebElement = cell.find_element(By.CSS_SELECTOR, ".n")
        cells[str(cell.get_attribute("data-count"))] = int(number.text)
    return cells


async def _visibility_counts(client: Client, window: timedelta) -> dict[str, int]:
    """The map's numbers as this test reads them from Temporal: running sagas per step and
    phase (stuck: ``SagaStuck`` true; the rest: all of the phase minus the stuck), and sagas
    closed within the window by status (cancelled ones by the step they failed at)."""
    of_type = f"WorkflowType = '{ORDER_SAGA_WORKFLOW}'"
    since = (datetime.now(UTC) - window).isoformat()

    async def count(query: str) -> int:
        return (await client.count_workflows(f"{of_type} AND {query}")).count

    async def at(step: str, phase: str) -> tuple[int, int]:
        where = f"ExecutionStatus = 'Running' AND SagaStep = '{step}' AND SagaStatus = '{phase}'"
        every, stuck = await asyncio.gather(count(where), count(f"{where} AND SagaStuck = true"))
        return every - stuck, stuck

    expected: dict[str, int] = {}
    cancelled = 0
    for step in ORDER_SAGA.steps:
        expected[f"{step.name}:running"], expected[f"{step.name}:stuck"] = await at(
            step.name, "RUNNING"
        )
        if isinstance(step, Step) and step.compensation is not None:
            (
                expected[f"{step.name}:compensating"],
                expected[f"{step.name}:compensation_stuck"],
            ) = await at(step.name, "COMPENSATING")
        failed_here = await count(
            f"CloseTime > '{since}' AND SagaStatus = 'CANCELLED' AND SagaStep = '{step.name}'"
        )
        expected[f"{step.name}:cancelled"] = failed_here
        cancelled += failed_here
    expected["cancelled"] = cancelled
    expected["completed"] = await count(f"CloseTime > '{since}' AND SagaStatus = 'COMPLETED'")
    return expected


async def test_the_map_shows_the_visibility_counts_and_refreshes_them_in_place(
    browser: webdriver.Chrome,
    stack: Settings,
    api_module: httpx.AsyncClient,
    temporal_client: Client,
) -> None:
    browser.get(f"{stack.api_url}/ui/map/order?window=24h")
    browser.execute_script("window.notReloaded = true;")
    before = _map_cells(browser)

    paths = [path for path in SAGA_PATHS if path.name in _PATHS]
    ended = await asyncio.gather(*(run_path(api_module, path) for path in paths))

    # The page polls its JSON twin every 5 s; other sessions' sagas may move meanwhile.
    deadline = asyncio.get_running_loop().time() + 30
    while True:
        shown = _map_cells(browser)
        expected = await _visibility_counts(temporal_client, timedelta(hours=24))
        if shown == expected or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    assert shown == expected
    assert browser.execute_script("return window.notReloaded === true;"), "the page reloaded"
    assert shown["completed"] > before["completed"]
    assert shown["charge_payment:cancelled"] > before["charge_payment:cancelled"]
    assert shown["reserve_stock:cancelled"] > before["reserve_stock:cancelled"]
    assert shown["schedule_shipment:cancelled"] > before["schedule_shipment:cancelled"]

    # The return saga's pages, on a return of the completed order.
    completed = next(saga["order_id"] for saga in ended if saga["saga"]["status"] == "COMPLETED")
    return_id = f"ui-ret-{completed}"
    asked = await api_module.post(
        f"/orders/{completed}/returns",
        json={"return_id": return_id, "items": [{"sku": "SKU-1003", "quantity": 1}]},
    )
    assert asked.status_code == 202, asked.text
    for page, says in (
        (f"/ui/returns/{return_id}", f"Return {return_id}"),
        ("/ui/map/return", "Return saga map"),
    ):
        answer = await _as_session(stack, browser, "GET", page)
        assert answer.status_code == 200, answer.text
        assert says in answer.text


async def _until_flagged(api: httpx.AsyncClient, order_id: str) -> None:
    await saga_when(
        api,
        order_id,
        lambda saga: any(s["name"] == _REFUND_STEP and s["stuck"] for s in saga["saga"]["steps"]),
        wait_s=90,
    )


async def _as_session(
    stack: Settings,
    browser: webdriver.Chrome,
    method: str,
    path: str,
    form: dict[str, str] | None = None,
) -> httpx.Response:
    """A request with the browser's session cookie, for what a page cannot show: the status."""
    cookie = browser.get_cookie("saga_session")
    assert cookie is not None
    async with httpx.AsyncClient(
        base_url=stack.api_url, cookies={"saga_session": cookie["value"]}, timeout=30
    ) as client:
        return await client.request(method, path, data=form)


async def test_without_operate_no_actions_are_shown_and_forged_posts_are_refused(
    browser: webdriver.Chrome,
    stack: Settings,
    scoped_tokens: dict[Scope, str],
    api_module: httpx.AsyncClient,
    stuck_order: str,
) -> None:
    await _until_flagged(api_module, stuck_order)
    page = f"/ui/orders/{stuck_order}"
    resolve = {"step": _REFUND_STEP, "action": "resolve_manually", "reason": "forged"}

    _sign_in(browser, stack, scoped_tokens[Scope.SAGAS_READ])
    browser.get(f"{stack.api_url}{page}")
    assert "⚠ stuck" in browser.find_element(By.ID, f"step-{_REFUND_STEP}").text
    assert browser.find_elements(By.CSS_SELECTOR, "form.action") == []
    assert browser.find_elements(By.XPATH, "//button[text()='Resolve']") == []
    # Listed at its step, stuck undoing it, with its attempts and last error.
    listing = f"{stack.api_url}/ui/map/order/steps/{_REFUND_STEP}?state=compensation_stuck"

    def listed(b: webdriver.Chrome) -> str:
        b.get(listing)
        rows = b.find_elements(By.XPATH, f"//tr[th/a[text()='{stuck_order}']]")
        return rows[0].text if rows else ""

    assert "refuses refunds" in _wait(browser, listed, 10)
    browser.get(f"{stack.api_url}{page}")
    # The sign-out form carries the session's CSRF token: valid, but the token may not act.
    csrf = browser.find_element(By.CSS_SELECTOR, "form.signout input[name=csrf]")
    read_only = await _as_session(
        stack,
        browser,
        "POST",
        f"{page}/repair",
        {**resolve, "csrf": str(csrf.get_attribute("value"))},
    )
    assert read_only.status_code == 403
    assert "lacks the scope &#39;sagas:operate&#39;" in read_only.text

    _sign_in(browser, stack, _dev_token(stack))
    browser.get(f"{stack.api_url}{page}")
    assert browser.find_elements(By.CSS_SELECTOR, f"form.action[data-step={_REFUND_STEP}]")
    # The form a page of another site would post: everything but the CSRF token.
    browser.execute_script(
        """const form = document.createElement("form");
        form.method = "post"; form.action = arguments[0];
        for (const [name, value] of Object.entries(arguments[1])) {
          const input = document.createElement("input");
          input.type = "hidden"; input.name = name; input.value = value; form.append(input);
        }
        document.body.append(form); form.submit();""",
        f"{page}/repair",
        resolve,
    )
    problem = _wait(browser, lambda b: b.find_element(By.ID, "problem"), 10)
    assert "CSRF token" in problem.text
    no_csrf = await _as_session(stack, browser, "POST", f"{page}/repair", resolve)
    assert no_csrf.status_code == 403
    oversized = {**resolve, "reason": "x" * stack.api_max_body_bytes}
    assert (
        await _as_session(stack, browser, "POST", f"{page}/repair", oversized)
    ).status_code == 413

    saga = (await api_module.get(f"/sagas/{stuck_order}")).json()["saga"]
    refund = next(s for s in saga["steps"] if s["name"] == _REFUND_STEP)
    assert saga["status"] == "COMPENSATING"
    assert refund["stuck"] is True
    assert refund["resolution"] is None


async def test_a_saga_stuck_on_a_refund_is_resolved_on_its_page_and_ends_cancelled(
    browser: webdriver.Chrome, stack: Settings, api_module: httpx.AsyncClient, stuck_order: str
) -> None:
    await _until_flagged(api_module, stuck_order)
    _sign_in(browser, stack, _dev_token(stack))
    picture = os.environ.get("SAGA_UI_MAP_SCREENSHOT")
    if picture:  # docs/img/saga-map.png: see docs/ui.md
        browser.get(f"{stack.api_url}/ui/map/order")
        Path(picture).parent.mkdir(parents=True, exist_ok=True)
        size = browser.get_window_size()
        height = browser.execute_script("return document.documentElement.scrollHeight;")
        browser.set_window_size(size["width"], size["height"] + height - 600)
        browser.save_screenshot(picture)
        browser.set_window_size(size["width"], size["height"])
    browser.get(f"{stack.api_url}/ui/orders/{stuck_order}")
    assert browser.find_element(By.ID, "saga-status").text == "COMPENSATING"

    form = browser.find_element(By.CSS_SELECTOR, f"form.action[data-step={_REFUND_STEP}]")
    form.find_element(By.NAME, "reason").send_keys("refunded by hand in the processor's console")
    form.find_element(By.CSS_SELECTOR, "button[value=resolve_manually]").click()

    notice = _wait(browser, lambda b: b.find_element(By.ID, "notice"), 10)
    assert notice.text.startswith("Done:")
    status = _wait(
        browser,
        lambda b: (s := b.find_element(By.ID, "saga-status")).text == "CANCELLED" and s,
        30,
    )
    assert status
    row = browser.find_element(By.ID, f"step-{_REFUND_STEP}").text
    assert "refunded by hand in the processor's console" in row


async def test_signing_out_ends_the_session(browser: webdriver.Chrome, stack: Settings) -> None:
    _sign_in(browser, stack, _dev_token(stack))
    _wait(browser, lambda b: b.current_url.endswith("/ui/map/order"), 10)
    browser.find_element(By.CSS_SELECTOR, "form.signout button").click()
    _wait(browser, lambda b: b.find_elements(By.ID, "token"), 10)
    assert browser.get_cookie("saga_session") is None

    browser.get(f"{stack.api_url}/ui/stuck?older_than=60")
    _wait(browser, lambda b: b.find_elements(By.ID, "token"), 10)
    assert browser.current_url.endswith("/ui/signin?next=%2Fui%2Fstuck%3Folder_than%3D60")
