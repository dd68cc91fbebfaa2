"""The return saga's activity and workflow contract: its names, ids and models."""

import pytest
from pydantic import BaseModel, ValidationError

from contracts import activities, task_queues
from contracts.activities import (
    AUTHORIZE_RETURN,
    COMPLETE_RETURN,
    DEFAULT_RETURN_DEADLINE_DAYS,
    DEFAULT_RETURN_WINDOW_DAYS,
    EXPIRE_RETURN,
    ISSUE_RETURN_LABEL,
    REFUND_RETURN,
    RESTOCK,
    VOID_RETURN_LABEL,
    AuthorizeReturnResult,
    ReturnLine,
    ReturnOutcome,
    ReturnRequest,
    ReturnSagaInput,
    ReturnStatus,
    SagaPhase,
    SagaStatus,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.events.common import Money, PricedLine, StockLine

_REQUEST = {"return_id": "ret-1", "order_id": "order-1", "items": [{"sku": "SKU-1", "quantity": 1}]}


def test_a_return_saga_is_found_by_its_return_id() -> None:
    """One saga per return, apart from the order sagas' ids."""
    assert return_workflow_id("ret-1") == "return-ret-1"
    assert return_workflow_id("1") != saga_workflow_id("1")


def test_each_activity_is_named_after_the_queue_that_serves_it() -> None:
    """The part before the dot is the owning service: the orchestrator's for the order's."""
    queues = {"order": task_queues.ORCHESTRATOR, "payment": task_queues.PAYMENT}
    queues |= {"inventory": task_queues.INVENTORY, "shipping": task_queues.SHIPPING}
    names = {
        AUTHORIZE_RETURN: task_queues.ORCHESTRATOR,
        EXPIRE_RETURN: task_queues.ORCHESTRATOR,
        COMPLETE_RETURN: task_queues.ORCHESTRATOR,
        ISSUE_RETURN_LABEL: task_queues.SHIPPING,
        VOID_RETURN_LABEL: task_queues.SHIPPING,
        RESTOCK: task_queues.INVENTORY,
        REFUND_RETURN: task_queues.PAYMENT,
    }

    assert len(set(names)) == 7
    for name, queue in names.items():
        assert queues[name.partition(".")[0]] == queue, name


def test_a_request_maps_to_the_contract() -> None:
    """The lines are plain SKU quantities; a reason is optional."""
    request = ReturnRequest.model_validate(_REQUEST)

    assert request.items == [ReturnLine(sku="SKU-1", quantity=1)]
    assert request.items == [StockLine(sku="SKU-1", quantity=1)]
    assert request.reason == ""


@pytest.mark.parametrize("bad_id", ["", " ret-1", "ret 1", "-ret", "ret/1", "r" * 65, "rét"])
@pytest.mark.parametrize("field", ["return_id", "order_id"])
def test_ids_are_checked_as_the_api_checks_order_ids(field: str, bad_id: str) -> None:
    """Ids go into workflow ids, URLs and Kafka keys: only safe characters, 64 at most."""
    with pytest.raises(ValidationError, match=field):
        ReturnRequest.model_validate({**_REQUEST, field: bad_id})


@pytest.mark.parametrize(
    "change",
    [{"items": []}, {"items": [{"sku": "SKU-1", "quantity": 0}]}, {"refund": True}],
    ids=["no items", "zero quantity", "unknown field"],
)
def test_a_return_of_nothing_or_with_unknown_fields_is_refused(change: dict[str, object]) -> None:
    """At least one line of at least one item, and nothing the contract does not name."""
    with pytest.raises(ValidationError):
        ReturnRequest.model_validate({**_REQUEST, **change})


def test_the_saga_defaults_to_the_documented_window_and_deadline() -> None:
    """30 days to ask, 14 days for the parcel to arrive, in seconds."""
    saga_input = ReturnSagaInput(request=ReturnRequest.model_validate(_REQUEST), customer_id="c-1")

    assert saga_input.window_seconds == DEFAULT_RETURN_WINDOW_DAYS * 86_400 == 30 * 86_400
    assert saga_input.deadline_seconds == DEFAULT_RETURN_DEADLINE_DAYS * 86_400 == 14 * 86_400


def _return_models() -> list[type[BaseModel]]:
    names = [name for name in activities.__all__ if "Return" in name or name.startswith("Restock")]
    return [
        model
        for model in (getattr(activities, name) for name in names)
        if isinstance(model, type) and issubclass(model, BaseModel)
    ]


def test_the_return_models_are_listed() -> None:
    """The check below covers the return saga's models (the list is not empty by accident)."""
    assert len(_return_models()) >= 19


@pytest.mark.parametrize("model", _return_models(), ids=lambda model: model.__name__)
def test_every_return_model_is_frozen_and_strict(model: type[BaseModel]) -> None:
    """Inputs and results are values, and a field the contract lacks is an error."""
    assert model.model_config.get("frozen") is True
    assert model.model_config.get("extra") == "forbid"


def test_an_authorization_prices_its_lines() -> None:
    """The result holds each line at its unit price and the amount to refund."""
    price = Money(amount_minor=1299, currency="EUR")
    result = AuthorizeReturnResult(
        return_id="ret-1",
        order_id="order-1",
        lines=[PricedLine(sku="SKU-1", quantity=2, unit_price=price)],
        amount=Money(amount_minor=2598, currency="EUR"),
        payment_id="pay-1",
    )

    assert result.lines[0].unit_price == price


def test_a_return_status_is_a_saga_status_with_its_return() -> None:
    """Code that reads any saga's status reads a return's; the return adds its own fields."""
    status = ReturnStatus(
        order_id="order-1",
        customer_id="c-1",
        status=SagaPhase.RUNNING,
        current_step="await_parcel",
        steps=[],
        return_id="ret-1",
        outcome=ReturnOutcome.RUNNING,
    )

    assert isinstance(status, SagaStatus)
    assert ReturnStatus.model_validate_json(status.model_dump_json()) == status
    assert [outcome.value for outcome in ReturnOutcome] == [
        "RUNNING",
        "COMPLETED",
        "REJECTED",
        "EXPIRED",
        "CANCELLED",
    ]
