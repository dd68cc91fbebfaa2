"""Many sagas in a namespace of their own, for timing the saga map (``saga bench --map N``).

The map reads Temporal's visibility: how many sagas of each type are running, stuck or
compensating at each step, and how many ended, by outcome. What it costs depends on how many
executions the namespace holds, not on what the workflows did, so the namespace is filled
quickly: each saga is a real workflow execution of the saga's type (``OrderSaga``,
``ReturnSaga``), started with the search attributes a saga of that state carries, run by a
stand-in that ends at once (an ended saga) or waits (a running one). The mix is fixed by a
seed: most sagas ended, some running, some of those stuck or compensating.
"""

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.api.workflowservice.v1 import RegisterNamespaceRequest
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from contracts.activities import SagaPhase
from contracts.search_attributes import (
    CUSTOMER_ID_KEY,
    ORDER_ID_KEY,
    SAGA_STATUS_KEY,
    SAGA_STEP_KEY,
    SAGA_STUCK_KEY,
    SEARCH_ATTRIBUTES,
)
from orchestrator.saga import SagaDefinition, Step

__all__ = [
    "MAP_BENCH_QUEUE",
    "SyntheticSaga",
    "ensure_namespace",
    "map_bench_namespace",
    "plan_sagas",
    "seed_sagas",
]


def map_bench_namespace(count: int) -> str:
    """The namespace the map's bench fills with ``count`` sagas; kept between runs, so a
    second run of the same size starts at once."""
    return f"saga-map-bench-{count}"


MAP_BENCH_QUEUE = "saga-map-bench"

_STARTS_AT_ONCE = 48
_RETENTION = timedelta(days=7)


@dataclass(frozen=True)
class SyntheticSaga:
    """One saga of the bench's namespace: its type, id and the state it is left in."""

    workflow_type: str
    workflow_id: str
    status: str
    step: str
    stuck: bool = False

    @property
    def running(self) -> bool:
        """Whether its workflow keeps running (a saga that has not ended)."""
        return self.status in (SagaPhase.RUNNING.value, SagaPhase.COMPENSATING.value)

    def attributes(self) -> TypedSearchAttributes:
        """What a saga in this state carries."""
        pairs: list[SearchAttributePair[Any]] = [
            SearchAttributePair(ORDER_ID_KEY, self.workflow_id),
            SearchAttributePair(CUSTOMER_ID_KEY, "bench"),
            SearchAttributePair(SAGA_STATUS_KEY, self.status),
            SearchAttributePair(SAGA_STEP_KEY, self.step),
        ]
        if self.stuck:
            pairs.append(SearchAttributePair(SAGA_STUCK_KEY, True))
        return TypedSearchAttributes(pairs)


def plan_sagas(
    count: int, definitions: Sequence[tuple[str, SagaDefinition]], *, seed: int = 7
) -> list[SyntheticSaga]:
    """``count`` sagas spread over ``definitions`` (workflow type, steps), the first type
    taking four in five: 70% completed, 13% cancelled at a step, 2% ended with another named
    outcome where the type has one, 15% running (a fifth of them stuck) or compensating."""
    draw = random.Random(seed)
    sagas = []
    for index in range(count):
        workflow_type, definition = definitions[0 if draw.random() < 0.8 else -1]
        steps = [step.name for step in definition.steps]
        compensable = [
            step.name
            for step in definition.steps
            if isinstance(step, Step) and step.compensation is not None
        ]
        outcomes = sorted(definition.outcomes.items())
        roll = draw.random()
        stuck = False
        if roll < 0.70:
            status, step = SagaPhase.COMPLETED.value, steps[-1]
        elif roll < 0.83 or (roll < 0.85 and not outcomes):
            status, step = SagaPhase.CANCELLED.value, draw.choice(steps)
        elif roll < 0.85:
            status, step = draw.choice(outcomes)
        elif roll < 0.97:
            status, step = SagaPhase.RUNNING.value, draw.choice(steps)
            stuck = draw.random() < 0.2
        else:
            status, step = SagaPhase.COMPENSATING.value, draw.choice(compensable)
            stuck = draw.random() < 0.2
        workflow_id = f"map-{workflow_type.lower()}-{index:06d}"
        sagas.append(SyntheticSaga(workflow_type, workflow_id, status, step, stuck))
    return sagas


def tally(sagas: Sequence[SyntheticSaga]) -> Counter[tuple[str, str, str, bool]]:
    """How many sagas of each (type, status, step, stuck)."""
    return Counter((s.workflow_type, s.status, s.step, s.stuck) for s in sagas)


async def ensure_namespace(client: Client, namespace: str, say: Callable[[str], None]) -> None:
    """Register ``namespace`` with the saga's search attributes, unless it is there, and wait
    until the server serves it (a new namespace takes a few seconds to be known)."""
    try:
        await client.workflow_service.register_namespace(
            RegisterNamespaceRequest(
                namespace=namespace,
                workflow_execution_retention_period=Duration(
                    seconds=int(_RETENTION.total_seconds())
                ),
            )
        )
        say(f"namespace {namespace}: registered")
    except RPCError as exc:
        if exc.status is not RPCStatusCode.ALREADY_EXISTS:
            raise
    request = AddSearchAttributesRequest(
        namespace=namespace,
        search_attributes={
            name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
            for name, kind in SEARCH_ATTRIBUTES.items()
        },
    )
    async with asyncio.timeout(60):
        while True:
            try:
                await client.operator_service.add_search_attributes(request)
                break
            except RPCError as exc:
                if exc.status is RPCStatusCode.ALREADY_EXISTS:
                    break
                if exc.status is not RPCStatusCode.NOT_FOUND:
                    raise
            await asyncio.sleep(0.5)  # the namespace is not known to every service yet


async def seed_sagas(
    client: Client,
    sagas: Sequence[SyntheticSaga],
    progress: Callable[[int, int], None],
) -> int:
    """Start every saga of ``sagas`` that the namespace does not hold yet (a saga id is never
    started twice); the ended ones end at once. Returns how many were started (0 on a second
    run)."""
    if await _count(client, sagas, "") >= len(sagas):
        progress(len(sagas), len(sagas))
        return 0  # all there from an earlier run
    started = 0
    done = 0
    gate = asyncio.Semaphore(_STARTS_AT_ONCE)

    async def start(saga: SyntheticSaga) -> None:
        nonlocal started, done
        async with gate:
            try:
                await client.start_workflow(
                    saga.workflow_type,
                    saga.running,
                    id=saga.workflow_id,
                    task_queue=MAP_BENCH_QUEUE,
                    id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                    search_attributes=saga.attributes(),
                )
                started += 1
            except WorkflowAlreadyStartedError:
                pass  # seeded by an earlier run
            done += 1
            progress(done, len(sagas))

    async with Worker(
        client,
        task_queue=MAP_BENCH_QUEUE,
        workflows=[_StandInOrderSaga, _StandInReturnSaga],
        max_concurrent_workflow_tasks=64,
    ):
        await asyncio.gather(*(start(saga) for saga in sagas))
        ended = sum(1 for saga in sagas if not saga.running)
        async with asyncio.timeout(600):
            closed = " AND ExecutionStatus != 'Running'"
            ended_now = await _count(client, sagas, closed)
            while ended_now < ended:  # visibility lags the workflows a little
                await asyncio.sleep(0.5)
                ended_now = await _count(client, sagas, closed)
    return started


async def _count(client: Client, sagas: Sequence[SyntheticSaga], condition: str) -> int:
    """How many executions of the sagas' types the namespace holds (meeting ``condition``)."""
    types = sorted({saga.workflow_type for saga in sagas})
    query = " OR ".join(f"WorkflowType = '{name}'" for name in types)
    count = await client.count_workflows(f"({query}){condition}")
    return count.count


class _StandIn:
    """Ends at once (an ended saga) or waits for ever (a running one)."""

    async def _run(self, running: bool) -> None:
        if running:
            await workflow.wait_condition(lambda: False)


@workflow.defn(name="OrderSaga", sandboxed=False)
class _StandInOrderSaga(_StandIn):
    @workflow.run
    async def run(self, running: bool) -> None:
        await self._run(running)


@workflow.defn(name="ReturnSaga", sandboxed=False)
class _StandInReturnSaga(_StandIn):
    @workflow.run
    async def run(self, running: bool) -> None:
        await self._run(running)
