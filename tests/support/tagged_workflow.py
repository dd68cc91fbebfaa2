"""A small workflow that tags itself with the saga's search attributes, for the tests of a
Temporal server's visibility.

In a module of its own (standard library, ``temporalio`` and ``contracts`` only), so that
Temporal's sandbox, which replays it, does not load the test module's imports.
"""

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from contracts.search_attributes import ORDER_ID_KEY, SAGA_STATUS_KEY

__all__ = ["TaggedWorkflow", "confirm_order"]


@activity.defn(name="visibility-test.confirm-order")
async def confirm_order(order_id: str) -> str:
    """What a step of a saga returns, in miniature."""
    return f"confirmed {order_id}"


@workflow.defn(name="VisibilityTestWorkflow")
class TaggedWorkflow:
    """Tags itself with an order id, runs one activity, and marks itself completed."""

    @workflow.run
    async def run(self, order_id: str) -> str:
        workflow.upsert_search_attributes(
            [ORDER_ID_KEY.value_set(order_id), SAGA_STATUS_KEY.value_set("RUNNING")]
        )
        result = await workflow.execute_activity(
            confirm_order, order_id, start_to_close_timeout=timedelta(seconds=30)
        )
        workflow.upsert_search_attributes([SAGA_STATUS_KEY.value_set("COMPLETED")])
        return result
