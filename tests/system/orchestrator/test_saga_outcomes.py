"""The saga library's named outcomes, on a saga that is not the order's: a step's refusal and
a wait's timeout each end the saga undone under the status the definition names for them
(``REJECTED``, ``EXPIRED``), shown in the ``SagaStatus`` search attribute, while any other
failure still ends it ``CANCELLED``."""

import dataclasses
import uuid
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.search_attributes import SAGA_STATUS_KEY, SAGA_STEP_KEY
from orchestrator.saga import ActivityCall, SagaDefinition, SagaRunner, Step, StepPolicy, WaitStep

QUEUE = "outcome-probe"
REFUSED = "Refused"


class Probe(BaseModel):
    answer: str


class Asked(BaseModel):
    answer: str


class Undone(BaseModel):
    undone: bool


class Parcel(BaseModel):
    label: str


@activity.defn(name="probe.ask")
async def ask(probe: Probe) -> Asked:
    if probe.answer == "no":
        raise ApplicationError("the answer is no", type=REFUSED, non_retryable=True)
    return Asked(answer=probe.answer)


UNDONE: list[str] = []


@activity.defn(name="probe.undo")
async def undo(probe: Probe) -> Undone:
    UNDONE.append(probe.answer)
    return Undone(undone=True)


OUTCOME_SAGA = SagaDefinition(
    name="OutcomeSaga",
    steps=[
        Step(
            name="ask",
            action=ActivityCall("probe.ask", QUEUE, input=lambda ctx: ctx.input, result=Asked),
            compensation=ActivityCall(
                "probe.undo", QUEUE, input=lambda ctx: ctx.input, result=Undone
            ),
            policy=StepPolicy(business_errors=frozenset({REFUSED}), attempts_before_stuck=2),
            refusal_outcome="REJECTED",
        ),
        WaitStep(
            name="await_parcel",
            result=Parcel,
            timeout=lambda ctx: timedelta(days=14),
            timeout_reason="no parcel within 14 days",
            timeout_outcome="EXPIRED",
        ),
    ],
)


@workflow.defn(name="OutcomeSaga")
class OutcomeSaga:
    @workflow.init
    def __init__(self, probe: Probe) -> None:
        self._runner = SagaRunner(OUTCOME_SAGA, probe)

    @workflow.run
    async def run(self, probe: Probe) -> str:
        outcome = await self._runner.run()
        return outcome.status

    @workflow.signal
    def parcel(self, parcel: Parcel) -> None:
        self._runner.deliver("await_parcel", parcel)


async def _run(client: Client, answer: str, *, parcel: bool = False) -> tuple[str, str, str]:
    """Run the saga for ``answer``: its result, and its SagaStatus and SagaStep at the end."""
    async with Worker(client, task_queue=QUEUE, workflows=[OutcomeSaga], activities=[ask, undo]):
        handle = await client.start_workflow(
            OutcomeSaga.run, Probe(answer=answer), id=f"outcome-{uuid.uuid4()}", task_queue=QUEUE
        )
        if parcel:
            await handle.signal(OutcomeSaga.parcel, Parcel(label="L-1"))
        result = await handle.result()
        attributes = (await handle.describe()).typed_search_attributes
    return result, str(attributes.get(SAGA_STATUS_KEY)), str(attributes.get(SAGA_STEP_KEY))


async def test_a_refusal_ends_the_saga_under_the_outcome_its_step_names(
    workflow_env: WorkflowEnvironment,
) -> None:
    result, status, step = await _run(workflow_env.client, "no")
    assert (result, status, step) == ("REJECTED", "REJECTED", "ask")
    assert "no" not in UNDONE  # a refused step did nothing: nothing to undo


async def test_a_timed_out_wait_ends_the_saga_under_its_outcome_once_undone(
    workflow_env: WorkflowEnvironment,
) -> None:
    result, status, step = await _run(workflow_env.client, "expire-me")
    assert (result, status, step) == ("EXPIRED", "EXPIRED", "await_parcel")
    assert "expire-me" in UNDONE  # the step before the wait was undone first


async def test_a_saga_that_goes_through_completes(workflow_env: WorkflowEnvironment) -> None:
    result, status, _ = await _run(workflow_env.client, "yes", parcel=True)
    assert (result, status) == ("COMPLETED", "COMPLETED")


def test_an_outcome_may_not_be_named_as_a_saga_that_goes_on() -> None:
    step = OUTCOME_SAGA.steps[0]
    assert isinstance(step, Step)
    with pytest.raises(ValueError, match="would end the saga as COMPLETED"):
        SagaDefinition(name="bad", steps=[dataclasses.replace(step, refusal_outcome="COMPLETED")])
