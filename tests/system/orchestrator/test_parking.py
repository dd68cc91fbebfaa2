"""Parked steps and incidents, on a saga that is not the order's: a step whose failed attempts
reach its policy's ``park_after`` makes no further attempt until ``park_for`` passes or an
operator acts; a parked compensation waits for an operator however long it takes; and each
stuck episode opens exactly one incident, resolved when the episode ends."""

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from pydantic import BaseModel
from temporalio import activity, workflow
from temporalio.client import WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from contracts.activities import (
    IncidentKind,
    IncidentOpened,
    IncidentResolved,
    ResolveManuallyRequest,
    RetryNowRequest,
    SagaPhase,
    StepState,
)
from orchestrator.saga import (
    ActivityCall,
    OperatedSaga,
    SagaDefinition,
    SagaRunner,
    Step,
    StepPolicy,
)
from tests.support.saga_harness import CallLog

QUEUE = "parking-probe"
REFUSED = "Refused"


class Probe(BaseModel):
    probe_id: str


class Done(BaseModel):
    done: bool


@dataclass
class ProbeServices(CallLog):
    """The probe's activities: ``probe.call`` fails while ``down``, ``probe.undo`` while
    ``undo_down``; ``probe.check`` refuses the probes whose id starts with ``no``."""

    down: bool = True
    undo_down: bool = True

    @activity.defn(name="probe.call")
    async def call(self, probe: Probe) -> Done:
        self.calls.append("probe.call")
        if self.down:
            raise ApplicationError("the provider is down", type="Unavailable")
        return Done(done=True)

    @activity.defn(name="probe.undo")
    async def undo(self, probe: Probe) -> Done:
        self.calls.append("probe.undo")
        if self.undo_down:
            raise ApplicationError("the provider cannot undo", type="Unavailable")
        return Done(done=True)

    @activity.defn(name="probe.check")
    async def check(self, probe: Probe) -> Done:
        if probe.probe_id.startswith("no"):
            raise ApplicationError("no", type=REFUSED, non_retryable=True)
        return Done(done=True)


def _call(name: str) -> ActivityCall:
    return ActivityCall(name, QUEUE, input=lambda ctx: ctx.input, result=Done)


_PARKS_FOR_AN_HOUR = StepPolicy(
    attempts_before_stuck=2,
    time_budget=None,
    stuck_backoff=timedelta(seconds=10),
    park_after=4,
    park_for=timedelta(hours=1),
)
_PARKS_UNTIL_REPAIRED = StepPolicy(
    business_errors=frozenset({REFUSED}),
    attempts_before_stuck=2,
    stuck_backoff=timedelta(seconds=10),
    park_after=2,
)

PARKING_SAGA = SagaDefinition(
    name="ParkingSaga",
    lean_from_start=True,
    incidents=True,
    steps=[
        Step(
            name="call",
            action=_call("probe.call"),
            compensation=_call("probe.undo"),
            policy=_PARKS_FOR_AN_HOUR,
            compensation_policy=_PARKS_UNTIL_REPAIRED,
        ),
        Step(name="check", action=_call("probe.check"), policy=_PARKS_UNTIL_REPAIRED),
    ],
)


@workflow.defn(name="ParkingSaga")
class ParkingSaga(OperatedSaga):
    @workflow.init
    def __init__(self, probe: Probe) -> None:
        self._runner = SagaRunner(PARKING_SAGA, probe, order_id=probe.probe_id)

    @workflow.run
    async def run(self, probe: Probe) -> str:
        return (await self._runner.run()).status

    @workflow.query
    def steps(self) -> list[StepState]:
        return self._runner.steps

    @workflow.query
    def note_kinds(self) -> list[str]:
        return [note.kind for note in self._runner.notes]


Handle = WorkflowHandle[ParkingSaga, str]


def _worker(workflow_env: WorkflowEnvironment, services: ProbeServices) -> Worker:
    """The probe saga's worker, with ``services`` as its activities (incidents included)."""
    return Worker(
        workflow_env.client,
        task_queue=QUEUE,
        workflows=[ParkingSaga],
        activities=[
            services.call,
            services.undo,
            services.check,
            services.open_incident,
            services.resolve_incident,
        ],
    )


async def _until(handle: Handle, holds: Callable[[StepState], bool], seconds: float = 20) -> None:
    """Ask the ``call`` step's state until ``holds`` (real time: no clock is skipped)."""
    async with asyncio.timeout(seconds):
        while True:
            if holds((await handle.query(ParkingSaga.steps))[0]):
                return
            await asyncio.sleep(0.1)


async def test_a_parked_step_makes_no_attempt_until_its_park_for_has_passed(
    workflow_env: WorkflowEnvironment,
) -> None:
    services = ProbeServices()
    async with _worker(workflow_env, services):
        handle = await workflow_env.client.start_workflow(
            ParkingSaga.run, Probe(probe_id="p-1"), id=f"park-{uuid.uuid4()}", task_queue=QUEUE
        )
        await _until(handle, lambda step: step.stuck)  # a first round of 2 ran out
        await workflow_env.sleep(timedelta(seconds=11))  # its backoff: a second round
        await _until(handle, lambda step: step.parked_since is not None)

        parked = (await handle.query(ParkingSaga.steps))[0]
        assert parked.parked_reason == (
            "4 attempts failed in a row: Unavailable: the provider is down"
        )
        assert services.calls == ["probe.call"] * 4
        await workflow_env.sleep(timedelta(minutes=59))
        assert services.calls == ["probe.call"] * 4  # parked: no attempt for 59 minutes
        assert (await handle.query(ParkingSaga.steps))[0].parked_since == parked.parked_since

        services.down = False
        await workflow_env.sleep(timedelta(minutes=2))  # past the hour: it resumes by itself
        result = await handle.result()
        notes = await handle.query(ParkingSaga.note_kinds)

    assert result == SagaPhase.COMPLETED.value
    assert services.calls == ["probe.call"] * 5
    assert "parked" in notes
    opened, resolved = services.incidents  # one stuck episode: one incident, then its end
    assert isinstance(opened, IncidentOpened) and isinstance(resolved, IncidentResolved)
    assert opened.incident_id == resolved.incident_id == f"{handle.id}/call/1"
    assert (opened.kind, opened.step, opened.compensating) == (IncidentKind.STUCK, "call", False)
    assert (opened.order_id, opened.attempts) == ("p-1", 2)
    assert resolved.resolution == "recovered"


async def test_a_parked_compensation_waits_for_an_operator_and_is_never_given_up(
    workflow_env: WorkflowEnvironment,
) -> None:
    services = ProbeServices(down=False)
    async with _worker(workflow_env, services):
        handle = await workflow_env.client.start_workflow(
            ParkingSaga.run, Probe(probe_id="no-2"), id=f"park-{uuid.uuid4()}", task_queue=QUEUE
        )
        await _until(handle, lambda step: step.parked_since is not None)  # one round of undo
        assert services.calls == ["probe.call", "probe.undo", "probe.undo"]
        await workflow_env.sleep(timedelta(days=3))
        assert services.calls.count("probe.undo") == 2  # no park_for: it waits for a person

        await handle.execute_update(
            ParkingSaga.retry_now, RetryNowRequest(step="call", operator="ops", reason="try")
        )
        await _until(
            handle, lambda step: step.compensation_attempts == 4 and bool(step.parked_since)
        )
        assert services.calls.count("probe.undo") == 4  # one more round, then parked again
        await handle.execute_update(
            ParkingSaga.resolve_manually,
            ResolveManuallyRequest(step="call", operator="ops", reason="undone by hand"),
        )
        result = await handle.result()

    assert result == SagaPhase.CANCELLED.value
    assert [type(incident) for incident in services.incidents] == [
        IncidentOpened,
        IncidentResolved,
    ]
    opened, resolved = services.incidents
    assert isinstance(opened, IncidentOpened) and isinstance(resolved, IncidentResolved)
    assert (opened.kind, opened.compensating) == (IncidentKind.PARKED, True)
    assert resolved.resolution == "resolved-manually by ops: undone by hand"
