"""The saga map's numbers: where the sagas of one type are, counted in Temporal's visibility.

Each number is one ``count_workflows`` query (visibility groups only by ``ExecutionStatus``),
sent concurrently in two rounds: each state's total over all steps beside the window's
totals, then the per-step counts of the states that have sagas at all. The live counts look
at running executions only, the window's at executions closed within it. On the dev server
(SQLite) the queries of a round are answered one after the other, a few ms each at 10,000
sagas: fewer queries is what keeps the page fast.

What the search attributes hold (:mod:`contracts.search_attributes`): ``SagaStatus`` is
RUNNING, COMPENSATING, COMPLETED, CANCELLED or an outcome a step names (REJECTED, EXPIRED);
``SagaStep`` is the step being run or compensated, and once the saga has ended undone, the
step it failed at; ``SagaStuck`` is true while that step (or its compensation) is flagged
stuck, absent on sagas never stuck.
"""

import asyncio
import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from temporalio.client import Client, WorkflowExecution, WorkflowQueryFailedError
from temporalio.service import RPCError

from contracts.activities import (
    RETURN_SAGA_WORKFLOW,
    STATUS_QUERY,
    ReturnStatus,
    SagaStatus,
    StepState,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.search_attributes import SAGA_STATUS_KEY, SAGA_STEP_KEY, SAGA_STUCK_KEY
from orchestrator.api.models import SagaType
from orchestrator.saga import SagaDefinition, Step, WaitStep

__all__ = [
    "WINDOWS",
    "MapState",
    "SagaAtStep",
    "SagaMap",
    "SagaMapReader",
    "StepCounts",
    "StepPage",
    "state_query",
]

WINDOWS: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
"""The windows the totals can be counted over, by the name the page's ``window`` takes."""

_NOT_STUCK = f"({SAGA_STUCK_KEY.name} IS NULL OR {SAGA_STUCK_KEY.name} = false)"
_STUCK = f"{SAGA_STUCK_KEY.name} = true"


class MapState(StrEnum):
    """Where a running saga is at its current step, as the map counts and lists it."""

    RUNNING = "running"
    """Going forward, not flagged stuck."""
    STUCK = "stuck"
    """Going forward, flagged stuck (its retries ran out)."""
    COMPENSATING = "compensating"
    """Undoing the step, not flagged stuck."""
    COMPENSATION_STUCK = "compensation_stuck"
    """Undoing the step, flagged stuck (a refund that keeps failing, say)."""


_STATE_CLAUSES: dict[MapState, str] = {
    MapState.RUNNING: f"{SAGA_STATUS_KEY.name} = 'RUNNING' AND {_NOT_STUCK}",
    MapState.STUCK: f"{SAGA_STATUS_KEY.name} = 'RUNNING' AND {_STUCK}",
    MapState.COMPENSATING: f"{SAGA_STATUS_KEY.name} = 'COMPENSATING' AND {_NOT_STUCK}",
    MapState.COMPENSATION_STUCK: f"{SAGA_STATUS_KEY.name} = 'COMPENSATING' AND {_STUCK}",
}


def _of_type(saga_type: SagaType) -> str:
    return f"WorkflowType = '{saga_type.workflow_type}'"


def state_query(saga_type: SagaType, step: str | None, state: MapState) -> str:
    """The visibility query of the running sagas of ``saga_type`` at ``step`` (``None``: at
    any step) in ``state``."""
    at = "" if step is None else f"{SAGA_STEP_KEY.name} = '{step}' AND "
    return f"{_of_type(saga_type)} AND ExecutionStatus = 'Running' AND {at}{_STATE_CLAUSES[state]}"


def _closed_query(saga_type: SagaType, status: str, since: datetime, step: str | None) -> str:
    query = (
        f"{_of_type(saga_type)} AND ExecutionStatus != 'Running' AND "
        f"CloseTime > '{since.isoformat()}' AND {SAGA_STATUS_KEY.name} = '{status}'"
    )
    return query if step is None else f"{query} AND {SAGA_STEP_KEY.name} = '{step}'"


def _outcomes(definition: SagaDefinition) -> list[str]:
    """The outcomes other than CANCELLED that the saga's steps name, in step order."""
    named = (
        step.timeout_outcome if isinstance(step, WaitStep) else step.refusal_outcome
        for step in definition.steps
    )
    return list(dict.fromkeys(outcome for outcome in named if outcome))


@dataclass(frozen=True)
class StepCounts:
    """One step of the map: what it is and the sagas at it."""

    name: str
    owner: str | None
    """Who runs the step (its task queue)."""
    compensation_owner: str | None
    """Who runs its compensation."""
    has_compensation: bool
    counts: dict[MapState, int]
    """Running sagas at this step, by state (the compensation's only with a compensation)."""
    cancelled: int
    """Sagas that ended CANCELLED having failed at this step, within the window."""


@dataclass(frozen=True)
class SagaMap:
    """The map of one type of saga: its steps with their counts, and the window's totals."""

    saga_type: SagaType
    window: str
    read_at: datetime
    steps: list[StepCounts]
    completed: int
    outcomes: dict[str, int] = field(default_factory=dict)
    """Sagas ended with an outcome a step names (REJECTED, EXPIRED), within the window."""
    queries: int = 0
    """How many visibility queries the map took."""

    @property
    def cancelled(self) -> int:
        """Sagas ended CANCELLED within the window, whatever step they failed at."""
        return sum(step.cancelled for step in self.steps)

    def cells(self) -> dict[str, int]:
        """Every number of the map by the name the page and its JSON give it:
        ``<step>:<state>``, ``<step>:cancelled``, ``completed``, ``cancelled``, outcomes."""
        cells: dict[str, int] = {}
        for step in self.steps:
            for state, count in step.counts.items():
                cells[f"{step.name}:{state.value}"] = count
            cells[f"{step.name}:cancelled"] = step.cancelled
        cells["completed"] = self.completed
        cells["cancelled"] = self.cancelled
        cells.update(self.outcomes)
        return cells

    def as_json(self) -> dict[str, Any]:
        """What ``/ui/map/{type}/counts`` answers."""
        return {
            "saga_type": self.saga_type.value,
            "window": self.window,
            "read_at": self.read_at.isoformat(),
            "counts": self.cells(),
        }


@dataclass(frozen=True)
class SagaAtStep:
    """One saga of a step's list."""

    saga_type: SagaType
    saga_id: str
    """The order id of an order's saga, a return's return id."""
    started_at: datetime | None
    since: datetime | None
    """When the step last moved (the saga's start when it cannot say)."""
    attempts: int | None
    last_error: str | None


@dataclass(frozen=True)
class StepPage:
    """One page of the sagas at a step in a state, and the token of the next page."""

    sagas: list[SagaAtStep]
    next_page_token: str | None


PAGE_SIZE = 20
_LOOKUPS_AT_ONCE = 10
_RPC_TIMEOUT = timedelta(seconds=5)


class SagaMapReader:
    """Counts the sagas of a type per step and state, and the window's outcomes."""

    def __init__(self, client: Client, definitions: Mapping[SagaType, SagaDefinition]) -> None:
        self._client = client
        self._definitions = definitions

    async def read(self, saga_type: SagaType, window: str = "24h") -> SagaMap:
        """The map of ``saga_type``, its totals over ``window`` (a key of :data:`WINDOWS`).

        Raises:
            KeyError: ``window`` is not one of :data:`WINDOWS`.
            RPCError: Temporal did not answer.
        """
        now = datetime.now(UTC)
        since = now - WINDOWS[window]
        definition = self._definitions[saga_type]
        # First the states' totals (cheap: visibility finds running executions by their
        # status), beside the window's totals; then a state's counts per step only where
        # its total is not zero: an idle or finished namespace costs a few queries.
        first: dict[tuple[str, str], str] = {
            ("", state.value): state_query(saga_type, None, state) for state in MapState
        }
        for step in definition.steps:
            first[step.name, "cancelled"] = _closed_query(saga_type, "CANCELLED", since, step.name)
        first["", "completed"] = _closed_query(saga_type, "COMPLETED", since, None)
        outcomes = _outcomes(definition)
        for outcome in outcomes:
            first["", outcome] = _closed_query(saga_type, outcome, since, None)
        found = await self._counts(first)
        then: dict[tuple[str, str], str] = {}
        for step in definition.steps:
            compensated = isinstance(step, Step) and step.compensation is not None
            states = list(MapState) if compensated else [MapState.RUNNING, MapState.STUCK]
            for state in states:
                if found["", state.value]:
                    then[step.name, state.value] = state_query(saga_type, step.name, state)
                else:
                    found[step.name, state.value] = 0
        found.update(await self._counts(then))
        queries = {**first, **then}
        steps = [
            StepCounts(
                name=step.name,
                owner=definition.owner(step.name),
                compensation_owner=(
                    definition.owner(step.name, compensating=True)
                    if isinstance(step, Step)
                    else None
                ),
                has_compensation=isinstance(step, Step) and step.compensation is not None,
                counts={
                    state: found[step.name, state.value]
                    for state in MapState
                    if (step.name, state.value) in found
                },
                cancelled=found[step.name, "cancelled"],
            )
            for step in definition.steps
        ]
        return SagaMap(
            saga_type=saga_type,
            window=window,
            read_at=now,
            steps=steps,
            completed=found["", "completed"],
            outcomes={outcome: found["", outcome] for outcome in outcomes},
            queries=len(queries),
        )

    async def sagas_at(
        self, saga_type: SagaType, step: str, state: MapState, page_token: str | None = None
    ) -> StepPage:
        """One page (:data:`PAGE_SIZE`) of the running sagas at ``step`` in ``state``, with
        each one's attempts and last error from its status query and pending activity.

        Raises:
            ValueError: ``page_token`` is not a page token.
            RPCError: Temporal did not answer.
        """
        executions = self._client.list_workflows(
            state_query(saga_type, step, state),
            page_size=PAGE_SIZE,
            next_page_token=_decode(page_token) if page_token else None,
            rpc_timeout=_RPC_TIMEOUT,
        )
        await executions.fetch_next_page(page_size=PAGE_SIZE)
        gate = asyncio.Semaphore(_LOOKUPS_AT_ONCE)
        compensating = state in (MapState.COMPENSATING, MapState.COMPENSATION_STUCK)

        async def look(execution: WorkflowExecution) -> SagaAtStep:
            async with gate:
                return await self._look(saga_type, execution, step, compensating=compensating)

        sagas = await asyncio.gather(*(look(e) for e in executions.current_page or []))
        token = executions.next_page_token
        return StepPage(list(sagas), base64.urlsafe_b64encode(token).decode() if token else None)

    async def _look(
        self, saga_type: SagaType, execution: WorkflowExecution, step: str, *, compensating: bool
    ) -> SagaAtStep:
        handle = self._client.get_workflow_handle(execution.id)
        kind = ReturnStatus if execution.workflow_type == RETURN_SAGA_WORKFLOW else SagaStatus
        saga_id = _saga_id(saga_type, execution)
        try:
            status, description = await asyncio.gather(
                handle.query(STATUS_QUERY, result_type=kind, rpc_timeout=_RPC_TIMEOUT),
                handle.describe(rpc_timeout=_RPC_TIMEOUT),
            )
        except (RPCError, WorkflowQueryFailedError) as exc:
            # Gone since the list, or not answering: shown with what visibility knows.
            return SagaAtStep(
                saga_type, saga_id, execution.start_time, None, None, f"no status: {exc}"
            )
        state: StepState | None = next((s for s in status.steps if s.name == step), None)
        pending = description.raw_description.pending_activities
        attempts, last_error = 0, None
        if state is not None and compensating:
            attempts, last_error = state.compensation_attempts, state.compensation_last_error
        elif state is not None:
            attempts, last_error = state.attempts, state.last_error
        if pending:
            # A remote activity's attempts within the round the status has not counted yet.
            attempts = max(attempts, pending[0].attempt)
            if pending[0].HasField("last_failure"):
                last_error = pending[0].last_failure.message or last_error
        return SagaAtStep(
            saga_type=saga_type,
            saga_id=saga_id,
            started_at=execution.start_time,
            since=(state.updated_at if state else None) or execution.start_time,
            attempts=attempts,
            last_error=last_error,
        )

    async def _counts(self, queries: dict[tuple[str, str], str]) -> dict[tuple[str, str], int]:
        counted = await asyncio.gather(*(self._count(query) for query in queries.values()))
        return dict(zip(queries, counted, strict=True))

    async def _count(self, query: str) -> int:
        counted = await self._client.count_workflows(query, rpc_timeout=_RPC_TIMEOUT)
        return counted.count


def _saga_id(saga_type: SagaType, execution: WorkflowExecution) -> str:
    workflow_id = return_workflow_id if saga_type is SagaType.RETURN else saga_workflow_id
    return execution.id.removeprefix(workflow_id(""))


def _decode(token: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        raise ValueError("page_token is not a page token of this list") from None
