"""The API's return body: the example file is one, and its fingerprint tells returns apart."""

import json

import pytest
from pydantic import ValidationError

from orchestrator.api.models import ReturnBody
from tests.support import REPO


def _example() -> ReturnBody:
    body = json.loads((REPO / "examples" / "return.json").read_text())
    body.pop("order_id")  # the CLI's: the API takes the order from the path
    return ReturnBody.model_validate(body)


def test_the_example_return_is_a_valid_body() -> None:
    example = _example()
    request = example.to_request("ord-1")
    assert request.order_id == "ord-1"
    assert request.return_id == example.return_id
    assert [(line.sku, line.quantity) for line in request.items] == [("SKU-1001", 1)]


def test_the_fingerprint_differs_by_order_items_and_reason() -> None:
    example = _example()
    same = ReturnBody.model_validate(example.model_dump())
    assert example.digest("ord-1") == same.digest("ord-1")
    assert example.digest("ord-1") != example.digest("ord-2")
    other_reason = example.model_copy(update={"reason": "broken"})
    assert other_reason.digest("ord-1") != example.digest("ord-1")


def test_a_sku_listed_twice_is_refused() -> None:
    line = {"sku": "SKU-1001", "quantity": 1}
    with pytest.raises(ValidationError, match="listed twice"):
        ReturnBody.model_validate({"return_id": "r-1", "items": [line, line]})
