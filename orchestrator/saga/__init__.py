"""A small, typed saga for Temporal workflows: steps, their undo, and how they fail.

Declare the steps once, run them with ``SagaRunner`` inside a workflow::

    saga = SagaDefinition(
        name="checkout",
        steps=[
            Step(
                name="charge_payment",
                action=ActivityCall(CHARGE, PAYMENT, input=charge_input, result=Charged),
                compensation=ActivityCall(REFUND, PAYMENT, input=refund_input, result=Refunded),
                policy=StepPolicy(business_errors=frozenset({"PaymentDeclined"})),
            ),
            WaitStep(name="await_dispatch", result=Dispatched, timeout=..., timeout_reason=...),
        ],
    )
    outcome = await SagaRunner(saga, workflow_input).run()

The runner goes forward, compensates the completed steps in reverse order when one fails
(never giving up on a compensation, never letting a cancellation cut one short), keeps a
status for a query, and upserts the ``SagaStatus`` and ``SagaStep`` search attributes.
"""

from contracts.search_attributes import SAGA_STATUS_KEY, SAGA_STEP_KEY
from orchestrator.saga.definition import (
    ActivityCall,
    InputBuilder,
    SagaContext,
    SagaDefinition,
    SagaFailure,
    Step,
    StepPolicy,
    WaitStep,
)
from orchestrator.saga.runner import SagaOutcome, SagaRunner

__all__ = [
    "SAGA_STATUS_KEY",
    "SAGA_STEP_KEY",
    "ActivityCall",
    "InputBuilder",
    "SagaContext",
    "SagaDefinition",
    "SagaFailure",
    "SagaOutcome",
    "SagaRunner",
    "Step",
    "StepPolicy",
    "WaitStep",
]
