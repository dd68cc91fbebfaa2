"""Temporal's time-skipping test server, and workers for the sagas with stand-ins on it."""

from collections.abc import AsyncIterator

import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment

from contracts.search_attributes import SEARCH_ATTRIBUTES
from infra.engines.temporal_server import find_test_server
from tests.support.saga_harness import (
    ReturnHarness,
    ReturnStandIns,
    SagaHarness,
    StandIns,
    return_workers,
    saga_workers,
)


@pytest.fixture(scope="session")
async def workflow_env() -> AsyncIterator[WorkflowEnvironment]:
    """Temporal's time-skipping test server, with the saga's search attributes registered."""
    # The test server does not advertise the capabilities of a real server; the SDK core
    # warns about that on every worker start. Real warnings of its own are errors here.
    quiet = Runtime(
        telemetry=TelemetryConfig(
            logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
        )
    )
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_test_server(),
        data_converter=pydantic_data_converter,
        runtime=quiet,
    )
    try:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    name: IndexedValueType.Value(f"INDEXED_VALUE_TYPE_{kind.upper()}")
                    for name, kind in SEARCH_ATTRIBUTES.items()
                },
            )
        )
        yield env
    finally:
        await env.shutdown()


@pytest.fixture
def stand_ins() -> StandIns:
    """Fresh stand-in services for one test."""
    return StandIns()


@pytest.fixture
async def saga(
    workflow_env: WorkflowEnvironment, stand_ins: StandIns
) -> AsyncIterator[SagaHarness]:
    """Workers for one test."""
    async with saga_workers(workflow_env.client, stand_ins, env=workflow_env) as harness:
        yield harness


@pytest.fixture
async def returns(workflow_env: WorkflowEnvironment) -> AsyncIterator[ReturnHarness]:
    """Workers for one return saga test, with fresh stand-in services."""
    async with return_workers(workflow_env, ReturnStandIns()) as harness:
        yield harness
