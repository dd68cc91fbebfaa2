"""`saga stuck/repair/start` without an API: bad arguments and an API that does not answer."""

from infra.engines.processes import free_port
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
