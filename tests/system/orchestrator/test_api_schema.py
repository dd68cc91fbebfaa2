"""The running API against its own OpenAPI description: a property-based run (schemathesis).

Every operation of ``/openapi.json`` is called with generated requests, valid and invalid, on
the real stack; no answer may be a 5xx, and every answer must be one the description
documents: its status code, content type, headers and body schema.
"""

from typing import Any

import httpx
import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from infra.config.settings import Settings, api_headers
from orchestrator.workflows import ORDER_SAGA
from tests.support.orders_api import order_body

# Above the API's own 5 s deadline on its calls to Temporal.
_REQUEST_TIMEOUT_SECONDS = 10.0
# An event stream (``/sagas/{order_id}/events`` lasts as long as its saga) is read for this
# long in all, then checked: its status, headers and content type come first, and the
# description gives its events no schema to check them against.
_STREAM_SECONDS = 3.0


@pytest.fixture(scope="session")
def placed_order(stack: Settings) -> str:
    """The id of an order placed through the API, whose saga runs to completion."""
    body = order_body(prefix="schema", customer_id="cust-schema", sku="SKU-1001", unit_price=1250)
    order_id: str = body["order_id"]
    response = httpx.post(
        f"{stack.api_url}/orders",
        json=body,
        timeout=30,
        headers=api_headers(stack),
    )
    assert response.status_code == 202, response.text
    return order_id


@pytest.fixture(scope="session")
def api_schema(stack: Settings, placed_order: str) -> schemathesis.BaseSchema:
    """The API's own description, loaded from the running API."""
    description = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")

    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        # Random order ids only ever find no saga (404); some cases name a real saga so that
        # the answers about one (its view, its event stream, cancel and repair) are checked.
        if path_parameters is None or "order_id" not in path_parameters:
            return st.just(path_parameters)
        return st.sampled_from([path_parameters, {**path_parameters, "order_id": placed_order}])

    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        # The description lets any ``[A-Z]{3}`` be a currency and any identifier a step, but
        # only ISO 4217 codes and the saga's step names get past validation: without real ones
        # no generated order would start a saga and no repair would reach one.
        if not isinstance(body, dict) or not {"currency", "step"} & body.keys():
            return st.just(body)
        known = st.fixed_dictionaries(
            {
                key: values
                for key, values in (
                    ("currency", st.sampled_from(["EUR", "USD", "JPY"])),
                    ("step", st.sampled_from(ORDER_SAGA.step_names)),
                )
                if key in body
            }
        )
        return st.one_of(st.just(body), known.map(lambda values: {**body, **values}))

    description.hook(flatmap_path_parameters)
    description.hook(flatmap_body)
    return description


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@hypothesis.settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    # A live server is slow next to an in-process function, and invalid inputs are filtered.
    suppress_health_check=list(HealthCheck),
    # Shrinking replays failing requests against live sagas; the first failure is reported.
    phases=[Phase.explicit, Phase.generate],
)
def test_api_answers_as_its_description_says(case: schemathesis.Case[Any], stack: Settings) -> None:
    """No generated request gets a 5xx, nor an answer that the description does not allow."""
    answers = case.operation.definition.raw.get("responses", {}).values()
    streams = any("text/event-stream" in answer.get("content", {}) for answer in answers)
    case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_headers_conformance,
            response_schema_conformance,
        ],
        timeout=_STREAM_SECONDS if streams else _REQUEST_TIMEOUT_SECONDS,
        headers=api_headers(stack),  # a token with every scope: the routes' work is checked
    )
