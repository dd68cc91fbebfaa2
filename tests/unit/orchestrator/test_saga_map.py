"""The saga map's queries and cells, without Temporal (the counts against Temporal's own:
``tests/system/ui/test_saga_pages.py``)."""

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import cast

from temporalio.client import Client

from orchestrator.api.models import SagaType
from orchestrator.api.ui import MapState
from orchestrator.api.ui.saga_map import SagaMapReader, _outcomes, state_query
from orchestrator.workflows.order_saga import ORDER_SAGA
from orchestrator.workflows.return_saga import RETURN_SAGA


def test_each_state_is_one_query_of_running_sagas_at_the_step() -> None:
    queries = {state: state_query(SagaType.ORDER, "charge_payment", state) for state in MapState}
    for query in queries.values():
        assert query.startswith(
            "WorkflowType = 'OrderSaga' AND CloseTime IS NULL AND SagaStep = 'charge_payment' AND "
        )
    assert "SagaStatus = 'RUNNING'" in queries[MapState.RUNNING]
    assert "SagaStuck IS NULL OR SagaStuck = false" in queries[MapState.RUNNING]
    assert queries[MapState.STUCK].endswith("SagaStatus = 'RUNNING' AND SagaStuck = true")
    assert "SagaStatus = 'COMPENSATING'" in queries[MapState.COMPENSATING]
    assert "SagaStuck IS NULL" in queries[MapState.COMPENSATING]
    assert queries[MapState.COMPENSATION_STUCK].endswith(
        "SagaStatus = 'COMPENSATING' AND SagaStuck = true"
    )
    assert "WorkflowType = 'ReturnSaga'" in state_query(SagaType.RETURN, "refund", MapState.RUNNING)


def test_the_outcomes_counted_beside_cancelled_are_those_the_steps_name() -> None:
    assert _outcomes(ORDER_SAGA) == []
    assert _outcomes(RETURN_SAGA) == ["REJECTED", "EXPIRED"]


class _CountingVisibility:
    """Answers every count with 1 and keeps the queries asked (the reader's only call)."""

    def __init__(self) -> None:
        self.queries: list[str] = []

    async def count_workflows(self, query: str, **_: object) -> SimpleNamespace:
        self.queries.append(query)
        await asyncio.sleep(0.01)
        return SimpleNamespace(count=1)


async def test_one_reading_serves_every_viewer_within_the_cache_time() -> None:
    visibility = _CountingVisibility()
    reader = SagaMapReader(
        cast(Client, visibility),
        {SagaType.ORDER: ORDER_SAGA},
        cache_for=timedelta(seconds=0.2),
    )

    first, second = await asyncio.gather(reader.read(SagaType.ORDER), reader.read(SagaType.ORDER))
    asked = len(visibility.queries)
    third = await reader.read(SagaType.ORDER)
    await asyncio.sleep(0.25)
    fourth = await reader.read(SagaType.ORDER)

    assert first is second is third  # in flight, then fresh: shared
    assert asked == first.queries
    assert fourth is not first and len(visibility.queries) == 2 * asked


async def test_without_a_cache_time_every_request_reads() -> None:
    visibility = _CountingVisibility()
    reader = SagaMapReader(cast(Client, visibility), {SagaType.ORDER: ORDER_SAGA})

    first = await reader.read(SagaType.ORDER, "1h")
    await reader.read(SagaType.ORDER, "1h")

    assert len(visibility.queries) == 2 * first.queries
