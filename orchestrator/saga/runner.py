"""Runs a ``SagaDefinition`` inside a workflow: forward, then compensations in reverse.

Workflow code only: every wait is a durable timer (``workflow.sleep`` /
``workflow.wait_condition``), never ``time`` or ``asyncio.sleep``.

Cancellation. The forward steps run in a task of their own; the workflow's main task
only waits for the saga's body, shielded, so that a workflow cancellation (or a cancel
request from a signal) interrupts the forward steps and nothing else. Compensations run
after that, in the body, which no cancellation reaches: they are never cut short. When
the workflow itself was cancelled, ``run`` re-raises ``CancelledError`` once every
compensation is done, so the workflow ends as cancelled. Past the pivot step nothing turns
the saga back: a workflow cancellation is recorded in the notes and the remaining steps
run to the end.

History. Each history event costs the Temporal server and every replay, so the runner
writes few (behind ``LEAN_HISTORY_PATCH``, sagas started before it keep their old shape;
a definition that is ``lean_from_start`` has no such sagas and needs no patch marker):
the search attributes are upserted only when a value differs from what Temporal holds
(the workflow's start attributes included), once per workflow task, just before the
workflow waits; and steps whose ``ActivityCall`` is ``local`` run as local activities.
"""

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy, SearchAttributeUpdate
from temporalio.exceptions import ActivityError, ApplicationError, RetryState, TimeoutType
from temporalio.exceptions import CancelledError as TemporalCancelledError
from temporalio.exceptions import TimeoutError as TemporalTimeoutError
from temporalio.workflow import ActivityCancellationType

from contracts.activities import (
    OPEN_INCIDENT,
    RESOLVE_INCIDENT,
    CancelCause,
    IncidentKind,
    IncidentOpened,
    IncidentRecorded,
    IncidentResolved,
    ManualResolution,
    SagaNote,
    SagaPhase,
    StepPhase,
    StepState,
)
from contracts.search_attributes import SAGA_STATUS_KEY, SAGA_STEP_KEY, SAGA_STUCK_KEY
from orchestrator.saga.definition import (
    ActivityCall,
    SagaContext,
    SagaDefinition,
    SagaFailure,
    Step,
    StepPolicy,
    WaitStep,
)

__all__ = [
    "INCIDENTS_PATCH",
    "LEAN_HISTORY_PATCH",
    "PARKING_PATCH",
    "RESOLVED_PAST_PIVOT_PATCH",
    "STUCK_ATTRIBUTE_PATCH",
    "SagaOutcome",
    "SagaRunner",
]

LEAN_HISTORY_PATCH = "saga-lean-history"
"""``workflow.patched`` id of the lean history: search attributes upserted only when they
change, once per workflow task, and local activities for the steps that ask for them."""

RESOLVED_PAST_PIVOT_PATCH = "saga-resolved-past-pivot"
"""``workflow.patched`` id of a forward step past the pivot settled by an operator: it counts
as done and the saga goes on (before it, such a step failed and the saga turned back, undoing
the steps before the pivot). Asked only on that path, so other histories carry no marker."""

STUCK_ATTRIBUTE_PATCH = "saga-stuck-attribute"
"""``workflow.patched`` id of the ``SagaStuck`` search attribute: true while the current step
(or its compensation) is flagged stuck, false once it moves on. Asked the first time a lean
saga gets stuck, so sagas that never get stuck carry neither the marker nor the attribute;
histories recorded before it replay without them."""

PARKING_PATCH = "saga-parking"
"""``workflow.patched`` id of parking (``StepPolicy.park_after``): asked the first time a step
of a lean saga reaches its limit, so other histories carry no marker; sagas from before it
keep retrying as they did."""

INCIDENTS_PATCH = "saga-incidents"
"""``workflow.patched`` id of incidents (``SagaDefinition.incidents``): asked the first time
a step of a lean saga gets stuck."""

InputT = TypeVar("InputT")

# Below this, a forward step's budget is spent: a new round could not even start.
_LEAST_BUDGET = timedelta(seconds=1)


@dataclass(frozen=True)
class SagaOutcome:
    """How a saga ended: completed, or cancelled (and undone) for ``failure``."""

    phase: SagaPhase
    failure: SagaFailure | None = None

    @property
    def status(self) -> str:
        """The status it ended with: ``COMPLETED``, ``CANCELLED``, or the outcome its failure
        names (``REJECTED``, ``EXPIRED``...)."""
        return _status(self.phase, self.failure)


@dataclass
class _StepFailed(Exception):
    """A step failed and the saga turns back (control flow inside the runner)."""

    failure: SagaFailure
    maybe_applied: bool
    """The step may have had its effect, so it is compensated too."""


@dataclass
class _Incident:
    """The incident open for a step's stuck episode."""

    incident_id: str
    step: str
    compensating: bool


@dataclass
class _Interruption:
    reason: str
    by_workflow_cancel: bool = False


class SagaRunner(Generic[InputT]):
    """Runs one saga; the workflow forwards its signals, query and updates to it.

    Args:
        definition: the saga's steps.
        saga_input: the workflow's input, available to input builders as ``ctx.input``.
        search_attributes: set once when the saga starts (``OrderId``...), unless the
            workflow was started with them; ``SagaStatus`` and ``SagaStep`` are kept up to
            date by the runner at every transition.
        label: what the saga is called in its current details (``order 42``), which the
            Temporal Web UI shows beside the workflow: ``order 42: CANCELLED at
            schedule_shipment, no carrier delivers to AQ``.
        order_id: the order the saga is about, the key of its incidents' events.
    """

    def __init__(
        self,
        definition: SagaDefinition,
        saga_input: InputT,
        *,
        search_attributes: Sequence[SearchAttributeUpdate[Any]] = (),
        label: str = "",
        order_id: str = "",
    ) -> None:
        self.definition = definition
        self.label = label or definition.name
        self.order_id = order_id
        """The order the saga is about: the key of its incidents' events."""
        self.context: SagaContext[InputT] = SagaContext(saga_input)
        self._initial_attributes = list(search_attributes)
        self._records = {step.name: StepState(name=step.name) for step in definition.steps}
        self._phase = SagaPhase.RUNNING
        self._current: str | None = None
        self._past_pivot = False
        self._interruption: _Interruption | None = None
        self._forward_task: asyncio.Task[SagaFailure | None] | None = None
        self._deliveries: dict[str, BaseModel] = {}
        self._maybe_applied: str | None = None
        self._last_forward: str | None = None
        self._wake_ups = 0
        self._notes: list[SagaNote] = []
        self._upserted: tuple[str, str] | None = None
        self._lean = False
        self._parking: bool | None = None
        """Whether this saga parks (``PARKING_PATCH``), once asked."""
        self._incidents: bool | None = None
        """Whether this saga opens incidents (``INCIDENTS_PATCH``), once asked."""
        self._incident: _Incident | None = None
        self._episodes: dict[str, int] = {}
        self._stuck_shown: bool | None = None
        """Whether this saga keeps ``SagaStuck`` (``STUCK_ATTRIBUTE_PATCH``), once asked."""
        self._held: dict[str, Any] = {}
        """What Temporal holds for each search attribute (lean history)."""
        self._wanted: dict[str, SearchAttributeUpdate[Any]] = {}
        """Search attribute values not upserted yet (lean history)."""

    # --- What the status query reports -------------------------------------------------

    @property
    def phase(self) -> SagaPhase:
        """Where the saga is."""
        return self._phase

    @property
    def status(self) -> str:
        """The phase, or once the saga has ended undone the outcome its failure names
        (``REJECTED``, ``EXPIRED``...): what ``SagaStatus`` shows."""
        return _status(self._phase, self.context.failure)

    @property
    def current_step(self) -> str | None:
        """The step being run or compensated (``None`` once the saga is over)."""
        return self._current

    @property
    def failure(self) -> SagaFailure | None:
        """Why the saga turned back, once it has."""
        return self.context.failure

    @property
    def lean_history(self) -> bool:
        """Whether this saga writes the lean history (``LEAN_HISTORY_PATCH``): a workflow can
        take its own older patches as applied when this holds, without their markers."""
        return self._lean

    @property
    def steps(self) -> list[StepState]:
        """Every step, in order, with its attempts, errors and whether it is stuck."""
        return [record.model_copy() for record in self._records.values()]

    @property
    def notes(self) -> list[SagaNote]:
        """Requests and signals the saga refused or ignored, and operator actions."""
        return list(self._notes)

    # --- Running -------------------------------------------------------------------------

    async def run(self) -> SagaOutcome:
        """Run the saga to its end and say how it ended.

        Raises:
            asyncio.CancelledError: the workflow was cancelled; raised after every
                compensation has run.
        """
        self._lean = self.definition.lean_from_start or workflow.patched(LEAN_HISTORY_PATCH)
        if self._lean:
            started_with = workflow.info().typed_search_attributes.search_attributes
            self._held = {pair.key.name: pair.value for pair in started_with}
            self._want(self._initial_attributes)
        else:
            workflow.upsert_search_attributes(self._initial_attributes)
            self._publish()
        body = asyncio.create_task(self._body())
        workflow_cancelled = False
        while True:
            try:
                outcome = await asyncio.shield(body)
                break
            except asyncio.CancelledError:
                if body.done():
                    raise
                workflow_cancelled = True
                self._on_workflow_cancel()
        await self._tend_incident()
        self._flush_attributes()
        if workflow_cancelled and outcome.phase is SagaPhase.CANCELLED:
            raise asyncio.CancelledError(outcome.failure.reason if outcome.failure else None)
        return outcome

    async def _body(self) -> SagaOutcome:
        self._forward_task = asyncio.create_task(self._forward())
        try:
            failure = await self._forward_task
        except asyncio.CancelledError:
            # The interruption reached the forward task before it could handle it.
            failure = self._interrupted_failure(self._current)
            if self._current is not None:
                self._update(self._records[self._current], StepPhase.FAILED)
                self._maybe_applied = self._current
        if failure is None:
            self._set_current(None, SagaPhase.COMPLETED)
            return SagaOutcome(SagaPhase.COMPLETED)
        await self._compensate()
        return SagaOutcome(SagaPhase.CANCELLED, failure)

    async def _forward(self) -> SagaFailure | None:
        for step in self.definition.steps:
            record = self._records[step.name]
            if self._interruption is not None:
                return self._interrupted_failure(None)
            self._set_current(step.name)
            self._last_forward = step.name
            self._update(record, StepPhase.RUNNING)
            result: BaseModel | None
            try:
                if isinstance(step, WaitStep):
                    result = await self._wait(step, record)
                else:
                    result = await self._execute(step, record)
                if self._interruption is not None and not self._past_pivot:
                    raise self._interrupted(step.name)
            except _StepFailed as failed:
                self.context.failure = failed.failure
                self._update(record, StepPhase.FAILED)
                if failed.maybe_applied:
                    self._maybe_applied = step.name
                return failed.failure
            except asyncio.CancelledError:
                self._update(record, StepPhase.FAILED)
                self._maybe_applied = step.name
                return self._interrupted_failure(step.name)
            if result is not None:
                self.context.results[step.name] = result
                record.attempts += 1
            record.stuck = False
            self._update(record, StepPhase.DONE)
            if step.pivot:
                self._past_pivot = True
        return None

    async def _execute(self, step: Step, record: StepState) -> BaseModel | None:
        """The step's result, or ``None`` when an operator settled it by hand past the pivot."""
        policy = step.policy
        budget = None if self._past_pivot else policy.time_budget
        deadline = workflow.now() + budget if budget is not None else None
        backoff = policy.stuck_backoff
        failed_in_row = 0
        while True:
            remaining = deadline - workflow.now() if deadline is not None else None
            if remaining is not None and remaining < _LEAST_BUDGET:
                raise _StepFailed(
                    SagaFailure(
                        f"{step.name} did not succeed within {budget}: {record.last_error}",
                        step.name,
                    ),
                    maybe_applied=True,
                )
            try:
                return await self._call(
                    step.action,
                    policy,
                    business_errors=policy.business_errors,
                    schedule_to_close=remaining,
                    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
                )
            except ActivityError as error:
                if self._interruption is not None and not self._past_pivot:
                    raise self._interrupted(step.name) from error
                record.attempts += _attempts(error, policy)
                failed_in_row += _attempts(error, policy)
                record.last_error = _describe(error, step.action)
                business = _error_type(error) in policy.business_errors
                if business and not self._past_pivot:
                    refused = SagaFailure(
                        record.last_error, step.name, outcome=step.refusal_outcome
                    )
                    raise _StepFailed(refused, maybe_applied=False) from error
                spent = error.retry_state is RetryState.TIMEOUT and not _not_picked_up(error)
                if spent and deadline is not None:
                    continue  # the budget is spent: the check above fails the step
                record.stuck = True
                self._update(record, StepPhase.RUNNING)
            if self._parks(policy, failed_in_row):
                limit = policy.park_for
                if deadline is not None:
                    left = deadline - workflow.now()
                    limit = left if limit is None else min(limit, left)
                await self._park(record, failed_in_row, limit)
                failed_in_row = 0
                backoff = policy.stuck_backoff
            else:
                wait = backoff if deadline is None else min(backoff, deadline - workflow.now())
                await self._back_off(record, wait)
                backoff = min(backoff * 2, policy.max_backoff)
            if record.resolution is not None:
                resolution = record.resolution
                if self._past_pivot and workflow.patched(RESOLVED_PAST_PIVOT_PATCH):
                    # Nothing turns the saga back past its pivot: the operator did the step.
                    return None
                raise _StepFailed(
                    SagaFailure(
                        f"{step.name} resolved manually by {resolution.operator}: "
                        f"{resolution.reason}",
                        step.name,
                    ),
                    maybe_applied=False,
                )
            if self._interruption is not None and not self._past_pivot:
                raise self._interrupted(step.name)

    async def _wait(self, step: WaitStep, record: StepState) -> BaseModel:
        deadline = workflow.now() + step.timeout(self.context)
        while True:
            remaining = deadline - workflow.now()
            if remaining <= timedelta(0) or not await self._woken_within(step, remaining):
                record.last_error = step.timeout_reason
                expired = SagaFailure(step.timeout_reason, step.name, outcome=step.timeout_outcome)
                raise _StepFailed(expired, maybe_applied=False)
            if step.name not in self._deliveries:
                raise self._interrupted(step.name)
            value = self._deliveries.pop(step.name)
            rejection = step.accept(self.context, value) if step.accept else None
            if rejection is None:
                if not isinstance(value, step.result):
                    raise TypeError(f"{step.name} expects {step.result.__name__}")
                return value
            self._note("delivery-rejected", f"{step.name}: {rejection}")

    async def _woken_within(self, step: WaitStep, remaining: timedelta) -> bool:
        """Whether a value for ``step`` (or an interruption) came within ``remaining``."""
        await self._tend_incident()
        self._flush_attributes()
        try:
            await workflow.wait_condition(
                lambda: step.name in self._deliveries or self._interruption is not None,
                timeout=remaining,
                timeout_summary=f"{step.name} deadline",
            )
        except TimeoutError:
            return False
        return True

    async def _compensate(self) -> None:
        self._set_current(self._current, SagaPhase.COMPENSATING)
        to_undo = [
            step
            for step in self.definition.steps
            if self._records[step.name].state is StepPhase.DONE or step.name == self._maybe_applied
        ]
        for step in reversed(to_undo):
            if not isinstance(step, Step) or step.compensation is None:
                continue
            record = self._records[step.name]
            record.stuck = False
            self._set_current(step.name)
            self._update(record, StepPhase.COMPENSATING)
            await self._run_compensation(step, step.compensation, record)
            self._update(record, StepPhase.COMPENSATED)
        for record in self._records.values():
            if record.state is StepPhase.PENDING:
                self._update(record, StepPhase.SKIPPED)
        self._current = None
        self._phase = SagaPhase.CANCELLED
        self._publish(step=self.context.failed_step or self._last_forward)

    async def _run_compensation(
        self, step: Step, compensation: ActivityCall, record: StepState
    ) -> None:
        policy = step.compensation_policy or step.policy
        backoff = policy.stuck_backoff
        failed_in_row = 0
        while record.resolution is None:
            try:
                await self._call(compensation, policy)
            except ActivityError as error:
                record.compensation_attempts += _attempts(error, policy)
                failed_in_row += _attempts(error, policy)
                record.compensation_last_error = _describe(error, compensation)
                record.stuck = True
                self._update(record, StepPhase.COMPENSATING)
            else:
                record.compensation_attempts += 1
                record.stuck = False
                return
            if self._parks(policy, failed_in_row):
                await self._park(record, failed_in_row, policy.park_for)
                failed_in_row = 0
                backoff = policy.stuck_backoff
            else:
                await self._back_off(record, backoff)
                backoff = min(backoff * 2, policy.max_backoff)
        record.stuck = False

    async def _back_off(
        self, record: StepState, wait: timedelta | None, summary: str = "backoff"
    ) -> None:
        """Wait ``wait`` on a durable timer (``None``: with no timer), or less if an
        operator or a cancel steps in."""
        wake_ups = self._wake_ups
        if wait is not None and wait <= timedelta(0):
            return
        await self._tend_incident()
        self._flush_attributes()
        with contextlib.suppress(TimeoutError):
            await workflow.wait_condition(
                lambda: self._wake_ups != wake_ups or record.resolution is not None,
                timeout=wait,
                timeout_summary=f"{record.name} {summary}" if wait is not None else None,
            )

    def _parks(self, policy: StepPolicy, failed_in_row: int) -> bool:
        """Whether a step whose ``failed_in_row`` attempts failed in a row is parked now."""
        if policy.park_after is None or failed_in_row < policy.park_after or not self._lean:
            return False
        if self._parking is None:
            self._parking = workflow.patched(PARKING_PATCH)
        return self._parking

    async def _park(self, record: StepState, failed_in_row: int, limit: timedelta | None) -> None:
        """Make no attempt until an operator retries or resolves, or ``limit`` passes."""
        compensating = self._phase is SagaPhase.COMPENSATING
        error = record.compensation_last_error if compensating else record.last_error
        record.parked_since = workflow.now()
        record.parked_reason = f"{failed_in_row} attempts failed in a row: {error}"
        until = f"resumes by itself in {limit}" if limit is not None else "until an operator acts"
        self._note("parked", f"{record.name}: parked after {failed_in_row} attempts, {until}")
        await self._back_off(record, limit, "parked")
        record.parked_since = None
        record.parked_reason = None

    # --- Incidents -----------------------------------------------------------------------

    async def _tend_incident(self) -> None:
        """Open an incident when the current step's stuck episode begins, resolve it when
        the episode ends: one per episode (``SagaDefinition.incidents``)."""
        if not self.definition.incidents or not self._lean:
            return
        current = self._current
        record = self._records[current] if current is not None else None
        compensating = self._phase is SagaPhase.COMPENSATING
        stuck = record is not None and record.stuck
        incident = self._incident
        if incident is not None:
            if stuck and (incident.step, incident.compensating) == (current, compensating):
                return
            await self._resolve_incident(incident)
        if record is None or not stuck:
            return
        if self._incidents is None:
            self._incidents = workflow.patched(INCIDENTS_PATCH)
        if self._incidents:
            await self._open_incident(record, compensating)

    async def _open_incident(self, record: StepState, compensating: bool) -> None:
        episode = self._episodes.get(record.name, 0) + 1
        incident = _Incident(
            f"{workflow.info().workflow_id}/{record.name}/{episode}", record.name, compensating
        )
        kind = (
            IncidentKind.PARKED
            if record.parked_since is not None
            else IncidentKind.COMPENSATION_FAILING
            if compensating
            else IncidentKind.STUCK
        )
        opened = IncidentOpened(
            incident_id=incident.incident_id,
            saga_type=self.definition.name,
            workflow_id=workflow.info().workflow_id,
            order_id=self.order_id,
            step=record.name,
            compensating=compensating,
            kind=kind,
            attempts=record.compensation_attempts if compensating else record.attempts,
            last_error=record.compensation_last_error if compensating else record.last_error,
            opened_at=workflow.now(),
        )
        if await self._record_incident(OPEN_INCIDENT, opened):
            self._episodes[record.name] = episode
            self._incident = incident
            record.incident_id = incident.incident_id

    async def _resolve_incident(self, incident: _Incident) -> None:
        record = self._records[incident.step]
        if record.resolution is not None:
            resolution = (
                f"resolved-manually by {record.resolution.operator}: {record.resolution.reason}"
            )
        elif record.state in (StepPhase.DONE, StepPhase.COMPENSATED):
            resolution = "recovered"
        elif self._phase is SagaPhase.COMPENSATING and not incident.compensating:
            resolution = "turned-back"
        else:
            resolution = "saga-ended"
        resolved = IncidentResolved(
            incident_id=incident.incident_id,
            saga_type=self.definition.name,
            workflow_id=workflow.info().workflow_id,
            order_id=self.order_id,
            step=incident.step,
            resolution=resolution,
            resolved_at=workflow.now(),
        )
        if await self._record_incident(RESOLVE_INCIDENT, resolved):
            self._incident = None
            record.incident_id = None

    async def _record_incident(self, activity: str, event: BaseModel) -> bool:
        """Run the orchestrator's incident activity; a failure is noted, never fatal (the
        next wait tries again, with the same incident id)."""
        try:
            await workflow.execute_local_activity(
                activity,
                event,
                result_type=IncidentRecorded,
                start_to_close_timeout=_INCIDENT_TIMEOUT,
                retry_policy=RetryPolicy(maximum_attempts=3),
            )
        except (ActivityError, ApplicationError) as error:
            self._note("incident-unrecorded", f"{activity}: {error.message}")
            return False
        return True

    # --- What signals and updates do ---------------------------------------------------

    def deliver(self, step: str, value: BaseModel) -> bool:
        """Hand ``value`` to the wait step ``step``; ``False`` (and a note) if it is too late.

        Raises:
            KeyError: there is no wait step of that name.
        """
        wait_step = self.definition.step(step)
        if not isinstance(wait_step, WaitStep):
            raise KeyError(step)
        record = self._records[step]
        if record.state is StepPhase.DONE:
            self._note("delivery-ignored", f"{step}: already received, duplicate ignored")
        elif self._phase is not SagaPhase.RUNNING or self._interruption is not None:
            self._note("delivery-ignored", f"{step}: the saga no longer waits for it")
        elif step in self._deliveries:
            self._note("delivery-ignored", f"{step}: already delivered, duplicate ignored")
        elif record.state is StepPhase.RUNNING:
            # Judged on arrival: a pivot is passed the moment its value is accepted, so a
            # cancel request handled right after it is refused.
            rejection = wait_step.accept(self.context, value) if wait_step.accept else None
            if rejection is not None:
                self._note("delivery-rejected", f"{step}: {rejection}")
                return False
            self._deliveries[step] = value
            self._past_pivot = self._past_pivot or wait_step.pivot
            return True
        else:
            self._deliveries[step] = value
            return True
        return False

    def request_cancel(self, reason: str) -> bool:
        """Turn the saga back (undo what was done) unless it is past its pivot or over.

        Returns whether the request was accepted; a refused one is recorded in the notes.
        """
        if self._phase is not SagaPhase.RUNNING:
            self._note("cancel-ignored", f"the saga is already {self._phase.value}: {reason}")
            return False
        if self._past_pivot:
            self._note("cancel-refused", f"past the point of no return: {reason}")
            return False
        if self._interruption is not None:
            self._note("cancel-ignored", f"already being cancelled: {reason}")
            return False
        self._interrupt(_Interruption(reason))
        return True

    def check_stuck(self, step: str) -> None:
        """Validate an operator action on ``step``.

        Raises:
            ValueError: no such step, or it is not stuck.
        """
        if step not in self._records:
            raise ValueError(f"no step {step!r} in saga {self.definition.name!r}")
        if not self._records[step].stuck:
            raise ValueError(f"step {step!r} is not stuck")

    def retry_now(self, step: str, operator: str, reason: str = "") -> str:
        """End the backoff wait of the stuck ``step`` so it is tried again at once."""
        self.check_stuck(step)
        self._wake_ups += 1
        detail = f"{step}: retry now, asked by {operator}" + (f": {reason}" if reason else "")
        self._note("retry-now", detail)
        return detail

    def resolve_manually(self, step: str, reason: str, operator: str) -> str:
        """Mark the stuck ``step`` (or its compensation) as settled by hand."""
        self.check_stuck(step)
        record = self._records[step]
        record.resolution = ManualResolution(operator=operator, reason=reason, at=workflow.now())
        record.updated_at = workflow.now()
        detail = f"{step}: resolved manually by {operator}: {reason}"
        self._note("resolved-manually", detail)
        return detail

    # --- Helpers -----------------------------------------------------------------------

    def _on_workflow_cancel(self) -> None:
        if self._phase is SagaPhase.RUNNING and not self._past_pivot:
            if self._interruption is None:
                self._interrupt(_Interruption("the workflow was cancelled", True))
            return
        where = "past the point of no return" if self._past_pivot else self._phase.value
        self._note("workflow-cancel", f"cancellation requested while {where}; carrying on")

    def _interrupt(self, interruption: _Interruption) -> None:
        self._interruption = interruption
        self._wake_ups += 1
        if self._forward_task is not None and not self._forward_task.done():
            self._forward_task.cancel()

    def _interrupted(self, step: str | None) -> _StepFailed:
        return _StepFailed(self._interrupted_failure(step), maybe_applied=True)

    def _interrupted_failure(self, step: str | None) -> SagaFailure:
        interruption = self._interruption or _Interruption("cancelled", by_workflow_cancel=True)
        cause = (
            CancelCause.WORKFLOW_CANCELLED
            if interruption.by_workflow_cancel
            else CancelCause.CANCEL_REQUESTED
        )
        self.context.failure = SagaFailure(interruption.reason, step, cause)
        return self.context.failure

    def _note(self, kind: str, detail: str) -> None:
        self._notes.append(SagaNote(at=workflow.now(), kind=kind, detail=detail))

    def _update(self, record: StepState, state: StepPhase) -> None:
        record.state = state
        record.updated_at = workflow.now()

    def _set_current(self, step: str | None, phase: SagaPhase | None = None) -> None:
        self._current = step
        if phase is not None:
            self._phase = phase
        self._publish()

    def _publish(self, step: str | None = None) -> None:
        shown = step or self._current or self.definition.steps[-1].name
        values = (self.status, shown)
        updates = [SAGA_STATUS_KEY.value_set(values[0]), SAGA_STEP_KEY.value_set(values[1])]
        if self._lean:
            self._want(updates)
            return
        if values == self._upserted:
            return
        self._upserted = values
        workflow.upsert_search_attributes(updates)

    def _want(self, updates: Sequence[SearchAttributeUpdate[Any]]) -> None:
        """Keep ``updates`` for the next flush; the last value of each attribute wins."""
        for update in updates:
            self._wanted[update.key.name] = update

    def _flush_attributes(self) -> None:
        """Upsert, in one command, the wanted values that differ from what Temporal holds.

        Called just before the workflow waits (for a timer, a condition, an activity run by
        the task queue), so the values set within one workflow task become one upsert.
        The saga's current details (Temporal's user metadata) are set here too."""
        workflow.set_current_details(self.details())
        self._want_stuck()
        changed = [
            update
            for name, update in self._wanted.items()
            if self._held.get(name, _ABSENT) != update.value
        ]
        self._wanted.clear()
        if not changed:
            return
        workflow.upsert_search_attributes(changed)
        self._held.update((update.key.name, update.value) for update in changed)

    def details(self) -> str:
        """Where the saga is, in one line: what the Temporal Web UI shows as its details."""
        failure = self.context.failure
        if self._current is None:
            if failure is None:
                return f"{self.label}: {self.status}"
            where = f" at {failure.step}" if failure.step else ""
            return _shortened(f"{self.label}: {self.status}{where}, {failure.reason}")
        record = self._records[self._current]
        if self._phase is SagaPhase.COMPENSATING:
            line = f"{self.label}: COMPENSATING {self._current}"
            attempts, error = record.compensation_attempts, record.compensation_last_error
            if failure is not None:
                line += f" (turned back at {failure.step or 'a cancel'}: {failure.reason})"
        else:
            line = f"{self.label}: {self.status} at {self._current}"
            attempts, error = record.attempts, record.last_error
        if record.stuck:
            line += f"; stuck after {attempts} attempts: {error}"
        return _shortened(line)

    def _want_stuck(self) -> None:
        """Want ``SagaStuck`` to say whether the current step is flagged stuck, once the
        saga has been stuck (and keeps the attribute, ``STUCK_ATTRIBUTE_PATCH``)."""
        if not self._lean:
            return
        record = self._records.get(self._current) if self._current is not None else None
        stuck = record is not None and record.stuck
        if self._stuck_shown is None:
            if not stuck:
                return
            self._stuck_shown = workflow.patched(STUCK_ATTRIBUTE_PATCH)
        if self._stuck_shown:
            self._want([SAGA_STUCK_KEY.value_set(stuck)])

    async def _call(
        self,
        call: ActivityCall,
        policy: StepPolicy,
        *,
        business_errors: frozenset[str] = frozenset(),
        schedule_to_close: timedelta | None = None,
        cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL,
    ) -> BaseModel:
        """Run ``call`` with ``policy``'s retries: a local activity if it asks to be one."""
        await self._tend_incident()
        start_to_close = call.attempt_timeout
        if schedule_to_close is not None:
            start_to_close = min(start_to_close, schedule_to_close)
        retry_policy = RetryPolicy(
            initial_interval=policy.retry_interval,
            backoff_coefficient=2.0,
            maximum_interval=policy.max_backoff,
            maximum_attempts=policy.attempts_before_stuck,
            non_retryable_error_types=sorted(business_errors),
        )
        if self._lean and call.local:
            # Runs within this workflow task: what is wanted is upserted after it, with
            # whatever the step's outcome changes.
            try:
                local: BaseModel = await workflow.execute_local_activity(
                    call.name,
                    call.input(self.context),
                    result_type=call.result,
                    schedule_to_close_timeout=schedule_to_close,
                    start_to_close_timeout=start_to_close,
                    retry_policy=retry_policy,
                    cancellation_type=cancellation_type,
                )
            except ApplicationError as failure:
                raise _local_activity_error(call, failure, business_errors) from failure
            return local
        self._flush_attributes()
        result: BaseModel = await workflow.execute_activity(
            call.name,
            call.input(self.context),
            task_queue=call.task_queue,
            result_type=call.result,
            schedule_to_close_timeout=schedule_to_close,
            schedule_to_start_timeout=call.pickup_timeout,
            start_to_close_timeout=start_to_close,
            retry_policy=retry_policy,
            cancellation_type=cancellation_type,
        )
        return result


_ABSENT = object()

_INCIDENT_TIMEOUT = timedelta(seconds=10)

# Temporal's details are for people: a line, not a log.
_DETAILS_LENGTH = 400


def _shortened(text: str) -> str:
    return text if len(text) <= _DETAILS_LENGTH else text[: _DETAILS_LENGTH - 3] + "..."


def _status(phase: SagaPhase, failure: SagaFailure | None) -> str:
    if phase is SagaPhase.CANCELLED and failure is not None and failure.outcome:
        return failure.outcome
    return phase.value


def _local_activity_error(
    call: ActivityCall, failure: ApplicationError, business_errors: frozenset[str]
) -> ActivityError:
    """The ``ActivityError`` a scheduled activity would have failed with.

    Temporal's core hands the workflow a local activity's own failure bare, once its retries
    are over (its time-outs and cancellations come wrapped in an ``ActivityError``), where a
    scheduled activity's comes wrapped: wrapped here too, a step fails alike however it runs.
    """
    refused = failure.non_retryable or failure.type in business_errors
    return ActivityError(
        f"local activity {call.name} failed",
        scheduled_event_id=0,
        started_event_id=0,
        identity="",
        activity_type=call.name,
        activity_id="",
        retry_state=(
            RetryState.NON_RETRYABLE_FAILURE if refused else RetryState.MAXIMUM_ATTEMPTS_REACHED
        ),
    )


def _error_type(error: ActivityError) -> str | None:
    cause = error.cause
    return cause.type if isinstance(cause, ApplicationError) else None


def _attempts(error: ActivityError, policy: StepPolicy) -> int:
    # A round that ran out made all its attempts; one that ended early made at least one.
    if error.retry_state is RetryState.MAXIMUM_ATTEMPTS_REACHED:
        return policy.attempts_before_stuck
    return 1


def _not_picked_up(error: ActivityError) -> bool:
    cause = error.cause
    return isinstance(cause, TemporalTimeoutError) and cause.type is TimeoutType.SCHEDULE_TO_START


def _describe(error: ActivityError, call: ActivityCall) -> str:
    cause = error.cause
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'ApplicationError'}: {cause.message}"
    if _not_picked_up(error):
        return (
            f"{call.name} was not picked up within {call.pickup_timeout}: "
            f"is a worker of task queue {call.task_queue!r} running?"
        )
    if isinstance(cause, TemporalTimeoutError):
        return f"timed out ({cause.type.name if cause.type else 'timeout'})"
    if isinstance(cause, TemporalCancelledError):
        return "cancelled"
    return str(cause or error)
