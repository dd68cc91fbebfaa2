"""The saga metrics: why a saga was cancelled, and the stuck sagas counted from Temporal."""

from contracts.activities import CancelCause, CancelOrderInput
from orchestrator.metrics import cancel_reason


def test_the_cancel_reason_is_the_customer_the_workflow_or_the_failed_step() -> None:
    def reason(cause: CancelCause | None, step: str | None) -> str:
        return cancel_reason(
            CancelOrderInput(order_id="o", reason="r", failed_step=step, cause=cause)
        )

    assert reason(CancelCause.CANCEL_REQUESTED, "await_dispatch") == "customer"
    assert reason(CancelCause.WORKFLOW_CANCELLED, "reserve_stock") == "workflow_cancelled"
    assert reason(CancelCause.STEP_FAILED, "charge_payment") == "charge_payment"
    assert reason(None, "charge_payment") == "charge_payment"  # sent before causes were
    assert reason(None, None) == "unknown"
