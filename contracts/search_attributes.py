"""The custom search attributes every saga upserts, registered when Temporal starts."""

from typing import Any

from temporalio.common import SearchAttributeKey

__all__ = [
    "CUSTOMER_ID_KEY",
    "ORDER_ID_KEY",
    "SAGA_STATUS_KEY",
    "SAGA_STEP_KEY",
    "SAGA_STUCK_KEY",
    "SEARCH_ATTRIBUTES",
    "SEARCH_ATTRIBUTE_KEYS",
]

ORDER_ID_KEY = SearchAttributeKey.for_keyword("OrderId")
CUSTOMER_ID_KEY = SearchAttributeKey.for_keyword("CustomerId")
SAGA_STATUS_KEY = SearchAttributeKey.for_keyword("SagaStatus")
"""RUNNING, COMPENSATING, COMPLETED or CANCELLED."""
SAGA_STEP_KEY = SearchAttributeKey.for_keyword("SagaStep")
"""The step being run or compensated; once finished, the last step or the failed one."""
SAGA_STUCK_KEY = SearchAttributeKey.for_bool("SagaStuck")
"""Whether the current step (or its compensation) is flagged stuck: its retries ran out and it
waits on a backoff or an operator. Absent on sagas that were never stuck."""

SEARCH_ATTRIBUTE_KEYS: tuple[SearchAttributeKey[Any], ...] = (
    ORDER_ID_KEY,
    CUSTOMER_ID_KEY,
    SAGA_STATUS_KEY,
    SAGA_STEP_KEY,
    SAGA_STUCK_KEY,
)

SEARCH_ATTRIBUTES: dict[str, str] = {
    key.name: key.indexed_value_type.name.title().replace("_", "") for key in SEARCH_ATTRIBUTE_KEYS
}
"""Name -> indexed value type as ``temporal server start-dev --search-attribute`` takes it."""
