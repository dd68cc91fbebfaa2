"""A small workflow whose payloads carry an order's personal data, for the codec tests.

In a module of its own (standard library, ``temporalio`` and ``contracts`` only), so that
Temporal's sandbox, which replays it, does not load the test module's imports.
"""

from datetime import timedelta

from temporalio import activity, workflow

with workflow.unsafe.imports_passed_through():
    from contracts.activities import Order

__all__ = ["DescribeOrder", "describe_order"]


@activity.defn(name="codec-test.describe-order")
async def describe_order(order: Order) -> str:
    """Echoes the order's personal data, so the result is as sensitive as the input."""
    return f"{order.shipping_address.line1} pays with {order.payment_token}"


@workflow.defn(name="CodecTestWorkflow")
class DescribeOrder:
    """One activity on the whole order."""

    @workflow.run
    async def run(self, order: Order) -> str:
        return await workflow.execute_activity(
            describe_order, order, start_to_close_timeout=timedelta(seconds=30)
        )
