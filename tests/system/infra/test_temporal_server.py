"""The embedded Temporal dev server runs workflows and knows the saga's search attributes."""

import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.worker import Worker

from contracts.search_attributes import SEARCH_ATTRIBUTES
from infra.engines.temporal_server import TemporalDevServer


@activity.defn
async def greet(name: str) -> str:
    return f"hello {name}"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            greet, name, start_to_close_timeout=timedelta(seconds=10)
        )


async def test_a_trivial_workflow_runs(temporal_client: Client) -> None:
    """A workflow with one activity runs to its result on the dev server."""
    queue = f"test-{uuid.uuid4()}"
    async with Worker(
        temporal_client, task_queue=queue, workflows=[GreetingWorkflow], activities=[greet]
    ):
        result = await temporal_client.execute_workflow(
            GreetingWorkflow.run, "saga", id=f"greet-{uuid.uuid4()}", task_queue=queue
        )
    assert result == "hello saga"


async def test_the_custom_search_attributes_exist(
    temporal_client: Client, temporal_server: TemporalDevServer
) -> None:
    """OrderId, CustomerId, SagaStatus and SagaStep are registered as keywords."""
    response = await temporal_client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=temporal_server.namespace)
    )
    registered = {
        name: IndexedValueType.Name(kind) for name, kind in response.custom_attributes.items()
    }
    for name, kind in SEARCH_ATTRIBUTES.items():
        assert registered.get(name) == f"INDEXED_VALUE_TYPE_{kind.upper()}", name
