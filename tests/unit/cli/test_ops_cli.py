"""`saga stuck/repair/start` without an API: bad arguments, an API that does not answer, and how
stuck and parked steps are shown."""

from datetime import UTC, datetime

from cli.ops import _steps_table, _stuck_table
from contracts.activities import SagaPhase, SagaStatus, StepState
from infra.engines.processes import free_port
from orchestrator.api.models import SagaLinks, SagaType, StuckSaga
from tests.support.cli import refusal, run_saga, without_settings


def test_an_api_that_does_not_answer_is_named() -> None:
    """Without the API, the command says where it looked and how to start it."""
    port = free_port()
    env = {**without_settings(), "SAGA_API_PORT": str(port)}
    refused = refusal(run_saga(env, "stuck"))
    assert f"http://127.0.0.1:{port} does not answer" in refused
    assert "saga up" in refused


def test_bad_arguments_exit_2() -> None:
    """Arguments that cannot be used are refused before anything is asked of the API."""
    env = {**without_settings(), "SAGA_API_PORT": str(free_port())}
    assert run_saga(env, "stuck", "--older-than", "five minutes").returncode == 2
    no_order = run_saga(env, "repair", "--step", "charge_payment", "--resolve", "--reason", "r")
    assert "ORDER_ID" in refusal(no_order, code=2)
    no_age = run_saga(
        env, "repair", "--bulk", "--step", "charge_payment", "--resolve", "--reason", "r"
    )
    assert "--older-than" in refusal(no_age, code=2)
    too_fast = run_saga(
        env,
        *("repair", "--bulk", "--step", "charge_payment", "--older-than", "10m"),
        *("--retry-now", "--reason", "r", "--rate", "500"),
    )
    assert "--rate" in refusal(too_fast, code=2)
    assert "not JSON" in refusal(run_saga(env, "start", "-", stdin="{nope"), code=2)
    assert run_saga(env, "ops-log", "--since", "yesterday").returncode == 2


def test_a_return_needs_its_order() -> None:
    """`saga return start` without --order and without an order_id in its file exits 2."""
    env = {**without_settings(), "SAGA_API_PORT": str(free_port())}
    body = '{"return_id": "r-1", "items": [{"sku": "SKU-1001", "quantity": 1}]}'
    no_order = run_saga(env, "return", "start", "-", stdin=body)
    assert "--order ORDER_ID" in refusal(no_order, code=2)
    assert "not JSON" in refusal(run_saga(env, "return", "start", "-", stdin="["), code=2)


def test_a_parked_step_shows_as_parked_in_the_stuck_list_and_the_steps() -> None:
    since = datetime(2026, 12, 6, 3, 0, tzinfo=UTC)
    links = SagaLinks(saga="/sagas/o-1", events="/sagas/o-1/events", web_ui="http://ui/o-1")
    parked = StuckSaga(
        saga_type=SagaType.ORDER,
        saga_id="o-1",
        order_id="o-1",
        workflow_id="order-o-1",
        saga_status="COMPENSATING",
        step="charge_payment",
        compensating=True,
        owner="payment",
        since=since,
        stuck_for_seconds=300.0,
        flagged_stuck=True,
        attempts=20,
        last_failure="Unavailable: the processor refuses refunds",
        parked_since=since,
        parked_reason="20 attempts failed in a row: Unavailable: the processor refuses refunds",
        links=links,
    )
    flagged = parked.model_copy(update={"saga_id": "o-2", "parked_since": None})
    steps = SagaStatus(
        order_id="o-1",
        customer_id="c-1",
        status=SagaPhase.COMPENSATING,
        current_step="charge_payment",
        steps=[StepState(name="charge_payment", stuck=True, parked_since=since)],
    )

    stuck_rows = _stuck_table([parked, flagged]).splitlines()
    step_rows = _steps_table(steps).splitlines()

    assert "parked" in next(row for row in stuck_rows if " o-1 " in row)
    assert "parked" not in next(row for row in stuck_rows if " o-2 " in row)
    assert "parked since 2026-12-06 03:00:00Z" in step_rows[-1]
