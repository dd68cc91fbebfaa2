"""The saga map's queries and cells, without Temporal (the counts against Temporal's own:
``tests/system/ui/test_saga_pages.py``)."""

from orchestrator.api.models import SagaType
from orchestrator.api.ui import MapState
from orchestrator.api.ui.saga_map import _outcomes, state_query
from orchestrator.workflows.order_saga import ORDER_SAGA
from orchestrator.workflows.return_saga import RETURN_SAGA


def test_each_state_is_one_query_of_running_sagas_at_the_step() -> None:
    queries = {state: state_query(SagaType.ORDER, "charge_payment", state) for state in MapState}
    for query in queries.values():
        assert query.startswith(
            "WorkflowType = 'OrderSaga' AND ExecutionStatus = 'Running' AND "
            "SagaStep = 'charge_payment' AND "
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
