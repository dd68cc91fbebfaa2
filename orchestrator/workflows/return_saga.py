"""``ReturnSaga``: items of a dispatched order sent back, restocked and refunded.

A declaration of steps on ``orchestrator.saga``, like ``OrderSaga``; the workflow adds the
carrier's signal, the status query and the operator updates. Forward:

    authorize the return → issue a return label → wait for the parcel (the point of no
    return) → restock → refund → complete the return

A refused authorization (``ReturnRejected``: not dispatched, outside the window, more than
bought...) ends the return ``REJECTED`` with nothing to undo. A parcel that does not arrive
before the deadline voids the label and expires the return (releasing its held quantities):
``EXPIRED``. Once the parcel is back the return only goes forward: a refund that keeps
failing is retried in rounds and shown stuck until it succeeds or an operator settles it.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import SearchAttributePair, TypedSearchAttributes

with workflow.unsafe.imports_passed_through():
    from contracts import task_queues
    from contracts.activities import (
        AUTHORIZE_RETURN,
        COMPLETE_RETURN,
        EXPIRE_RETURN,
        ISSUE_RETURN_LABEL,
        REFUND_RETURN,
        RESTOCK,
        RETURN_RECEIVED_SIGNAL,
        RETURN_SAGA_WORKFLOW,
        STATUS_QUERY,
        VOID_RETURN_LABEL,
        AuthorizeReturnInput,
        AuthorizeReturnResult,
        CompleteReturnInput,
        CompleteReturnResult,
        ExpireReturnInput,
        ExpireReturnResult,
        IssueReturnLabelInput,
        IssueReturnLabelResult,
        RefundReturnInput,
        RefundReturnResult,
        RestockInput,
        RestockResult,
        ReturnOutcome,
        ReturnReceived,
        ReturnSagaInput,
        ReturnSagaResult,
        ReturnStatus,
        SagaPhase,
        VoidReturnLabelInput,
        VoidReturnLabelResult,
    )
    from contracts.errors import RETURN_REJECTED
    from contracts.search_attributes import (
        CUSTOMER_ID_KEY,
        ORDER_ID_KEY,
        SAGA_STATUS_KEY,
        SAGA_STEP_KEY,
    )
    from orchestrator.saga import (
        ActivityCall,
        OperatedSaga,
        SagaContext,
        SagaDefinition,
        SagaRunner,
        Step,
        WaitStep,
    )
    from orchestrator.workflows._policies import service_policy

__all__ = [
    "PARCEL_DEADLINE_REASON",
    "RETURN_SAGA",
    "ReturnSaga",
    "ReturnSteps",
    "manual_refund_id",
    "start_attributes",
]

Context = SagaContext[ReturnSagaInput]


class ReturnSteps:
    """The names of the return saga's steps, as the status query and ``SagaStep`` show them."""

    AUTHORIZE_RETURN = "authorize_return"
    ISSUE_RETURN_LABEL = "issue_return_label"
    AWAIT_PARCEL = "await_parcel"
    RESTOCK = "restock"
    REFUND = "refund"
    COMPLETE_RETURN = "complete_return"


PARCEL_DEADLINE_REASON = "the parcel did not reach the warehouse before the deadline"
"""Why a return expired: the failure reason of ``await_parcel``'s timeout."""


def _ids(ctx: Context) -> dict[str, str]:
    request = ctx.input.request
    return {"order_id": request.order_id, "return_id": request.return_id}


def _authorize_input(ctx: Context) -> AuthorizeReturnInput:
    # The saga's start, not ``workflow.now()``: a retry in a later round decides on the same
    # moment as the first attempt did (the window must not close on a stuck authorization).
    return AuthorizeReturnInput(
        request=ctx.input.request,
        requested_at=workflow.info().workflow_start_time,
        window_seconds=ctx.input.window_seconds,
    )


def _label_input(ctx: Context) -> IssueReturnLabelInput:
    request = ctx.input.request
    return IssueReturnLabelInput(**_ids(ctx), items=request.items, reason=request.reason)


def _authorized(ctx: Context) -> AuthorizeReturnResult:
    return ctx.result(ReturnSteps.AUTHORIZE_RETURN, AuthorizeReturnResult)


def manual_refund_id(return_id: str) -> str:
    """The refund id a return completes with when an operator settled its refund by hand."""
    return f"manual-{return_id}"


def _complete_input(ctx: Context) -> CompleteReturnInput:
    refund = ctx.result_or_none(ReturnSteps.REFUND, RefundReturnResult)
    if refund is None:  # the stuck refund was settled by hand: the authorized amount
        request = ctx.input.request
        return CompleteReturnInput(
            **_ids(ctx),
            refund_id=manual_refund_id(request.return_id),
            amount=_authorized(ctx).amount,
        )
    return CompleteReturnInput(**_ids(ctx), refund_id=refund.refund_id, amount=refund.amount)


def _parcel_mismatch(ctx: Context, signal: ReturnReceived) -> str | None:
    label = ctx.result(ReturnSteps.ISSUE_RETURN_LABEL, IssueReturnLabelResult)
    if signal.return_id != ctx.input.request.return_id:
        return f"parcel of return {signal.return_id!r}, not of this return"
    if signal.label_id != label.label_id:
        return f"parcel with label {signal.label_id!r}, not {label.label_id!r}"
    return None


RETURN_SAGA = SagaDefinition(
    name=RETURN_SAGA_WORKFLOW,
    lean_from_start=True,
    incidents=True,
    steps=[
        Step(
            name=ReturnSteps.AUTHORIZE_RETURN,
            action=ActivityCall(
                name=AUTHORIZE_RETURN,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=_authorize_input,
                result=AuthorizeReturnResult,
            ),
            compensation=ActivityCall(
                name=EXPIRE_RETURN,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=lambda ctx: ExpireReturnInput(**_ids(ctx), reason=ctx.failure_reason),
                result=ExpireReturnResult,
            ),
            policy=service_policy(RETURN_REJECTED),
            refusal_outcome=ReturnOutcome.REJECTED.value,
        ),
        Step(
            name=ReturnSteps.ISSUE_RETURN_LABEL,
            action=ActivityCall(
                name=ISSUE_RETURN_LABEL,
                task_queue=task_queues.SHIPPING,
                input=_label_input,
                result=IssueReturnLabelResult,
            ),
            compensation=ActivityCall(
                name=VOID_RETURN_LABEL,
                task_queue=task_queues.SHIPPING,
                input=lambda ctx: VoidReturnLabelInput(**_ids(ctx), reason=ctx.failure_reason),
                result=VoidReturnLabelResult,
            ),
            policy=service_policy(),
        ),
        WaitStep(
            name=ReturnSteps.AWAIT_PARCEL,
            result=ReturnReceived,
            timeout=lambda ctx: timedelta(seconds=ctx.input.deadline_seconds),
            timeout_reason=PARCEL_DEADLINE_REASON,
            accept=_parcel_mismatch,
            pivot=True,
            owner=task_queues.SHIPPING,
            timeout_outcome=ReturnOutcome.EXPIRED.value,
        ),
        Step(
            name=ReturnSteps.RESTOCK,
            action=ActivityCall(
                name=RESTOCK,
                task_queue=task_queues.INVENTORY,
                input=lambda ctx: RestockInput(**_ids(ctx), items=ctx.input.request.items),
                result=RestockResult,
            ),
            policy=service_policy(),
        ),
        Step(
            name=ReturnSteps.REFUND,
            action=ActivityCall(
                name=REFUND_RETURN,
                task_queue=task_queues.PAYMENT,
                input=lambda ctx: RefundReturnInput(**_ids(ctx), amount=_authorized(ctx).amount),
                result=RefundReturnResult,
            ),
            policy=service_policy(),
        ),
        Step(
            name=ReturnSteps.COMPLETE_RETURN,
            action=ActivityCall(
                name=COMPLETE_RETURN,
                task_queue=task_queues.ORCHESTRATOR,
                local=True,
                input=_complete_input,
                result=CompleteReturnResult,
            ),
            policy=service_policy(),
        ),
    ],
)
"""The return saga's steps, their compensations and their failure policies."""


def start_summary(saga_input: ReturnSagaInput) -> str:
    """The saga's summary in the Temporal Web UI (its static user metadata), set at start."""
    request = saga_input.request
    items = sum(line.quantity for line in request.items)
    return (
        f"return {request.return_id} of order {request.order_id}: {items} item(s), "
        f"customer {saga_input.customer_id}"
    )


def start_attributes(saga_input: ReturnSagaInput) -> TypedSearchAttributes:
    """The search attributes to start a return's saga with, so the saga upserts none of
    them before it moves (a saga started without them upserts them itself)."""
    return TypedSearchAttributes(
        [
            SearchAttributePair(ORDER_ID_KEY, saga_input.request.order_id),
            SearchAttributePair(CUSTOMER_ID_KEY, saga_input.customer_id),
            SearchAttributePair(SAGA_STATUS_KEY, SagaPhase.RUNNING.value),
            SearchAttributePair(SAGA_STEP_KEY, RETURN_SAGA.steps[0].name),
        ]
    )


def _outcome(status: str) -> ReturnOutcome:
    """The return's outcome from the saga's status: undoing is not an outcome yet."""
    if status == SagaPhase.COMPENSATING.value:
        return ReturnOutcome.RUNNING
    return ReturnOutcome(status)


@workflow.defn(name=RETURN_SAGA_WORKFLOW)
class ReturnSaga(OperatedSaga):
    """The saga of one return; its id is ``return_workflow_id(return_id)``."""

    definition: SagaDefinition = RETURN_SAGA

    @workflow.init
    def __init__(self, saga_input: ReturnSagaInput) -> None:
        self._runner = SagaRunner(
            self.definition,
            saga_input,
            search_attributes=[
                ORDER_ID_KEY.value_set(saga_input.request.order_id),
                CUSTOMER_ID_KEY.value_set(saga_input.customer_id),
            ],
            label=f"return {saga_input.request.return_id}",
            order_id=saga_input.request.order_id,
        )

    @workflow.run
    async def run(self, saga_input: ReturnSagaInput) -> ReturnSagaResult:
        """Take the return through the saga; raises ``CancelledError`` if cancelled."""
        try:
            outcome = await self._runner.run()
        finally:
            self._remember_outcome()
        refund = self._runner.context.result_or_none(ReturnSteps.REFUND, RefundReturnResult)
        completed = outcome.phase is SagaPhase.COMPLETED
        request = saga_input.request
        return ReturnSagaResult(
            return_id=request.return_id,
            order_id=request.order_id,
            outcome=_outcome(outcome.status),
            failure_reason=outcome.failure.reason if outcome.failure else None,
            failed_step=outcome.failure.step if outcome.failure else None,
            refund_id=refund.refund_id if refund else None,
            amount=refund.amount if refund and completed else None,
        )

    def _remember_outcome(self) -> None:
        """Put how the return ended in the memo, readable in lists without a worker."""
        memo = self._outcome_memo()
        if memo is not None:
            workflow.upsert_memo(memo)

    @workflow.signal(name=RETURN_RECEIVED_SIGNAL)
    def return_received(self, signal: ReturnReceived) -> None:
        """The parcel reached the warehouse; another return's, duplicates and late ones
        change nothing (they are noted)."""
        self._runner.deliver(ReturnSteps.AWAIT_PARCEL, signal)

    @workflow.query(name=STATUS_QUERY)
    def status(self) -> ReturnStatus:
        """Where the return is, step by step, with attempts, errors and stuck flags."""
        saga_input = self._runner.context.input
        failure = self._runner.failure
        return ReturnStatus(
            order_id=saga_input.request.order_id,
            customer_id=saga_input.customer_id,
            return_id=saga_input.request.return_id,
            status=self._runner.phase,
            outcome=_outcome(self._runner.status),
            current_step=self._runner.current_step,
            steps=self._runner.steps,
            failure_reason=failure.reason if failure else None,
            failed_step=failure.step if failure else None,
            notes=self._runner.notes,
        )
