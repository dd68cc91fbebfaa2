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
status for a query and the saga's current details (Temporal's user metadata), and upserts the
``SagaStatus``, ``SagaStep`` and (once stuck) ``SagaStuck`` search attributes.
The package re-exports the public names of ``definition`` and ``runner`` (their ``__all__``).
"""

from contracts.search_attributes import SAGA_STATUS_KEY, SAGA_STEP_KEY
from orchestrator.saga import definition, operated, runner
from orchestrator.saga.definition import *  # noqa: F403
from orchestrator.saga.operated import *  # noqa: F403
from orchestrator.saga.runner import *  # noqa: F403

__all__ = ["SAGA_STATUS_KEY", "SAGA_STEP_KEY"]
__all__ += definition.__all__
__all__ += operated.__all__
__all__ += runner.__all__
