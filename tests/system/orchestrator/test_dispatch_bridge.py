"""The bridge turns the carrier's events into the waiting sagas' signals, on Temporal's test
server: ``shipping.return_received`` reaches the return's saga (``return-<id>``), and an event
of a saga that does not exist is let go, as a dispatch of an unknown order is."""

import asyncio
import logging
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from contracts.activities import RETURN_RECEIVED_SIGNAL, ReturnReceived, return_workflow_id
from contracts.events.shipping import ShippingReturnReceived, ShippingReturnReceivedData
from orchestrator.dispatch_bridge import DispatchBridge
from runtime import open_database


@workflow.defn(name="ReturnReceiptWaiter")
class ReturnReceiptWaiter:
    """A stand-in for the return saga's wait for its parcel."""

    def __init__(self) -> None:
        self._received: ReturnReceived | None = None

    @workflow.run
    async def run(self) -> ReturnReceived:
        await workflow.wait_condition(lambda: self._received is not None)
        assert self._received is not None
        return self._received

    @workflow.signal(name=RETURN_RECEIVED_SIGNAL)
    def received(self, signal: ReturnReceived) -> None:
        self._received = signal


def _received(return_id: str) -> ShippingReturnReceived:
    return ShippingReturnReceived(
        event_id=uuid.uuid4(),
        source="shipping-service",
        correlation_id="o-1",
        data=ShippingReturnReceivedData(order_id="o-1", return_id=return_id, label_id="lbl-1"),
    )


async def test_a_received_return_signals_its_saga_and_an_unknown_one_is_let_go(
    workflow_env: WorkflowEnvironment, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    queue = f"bridge-{uuid.uuid4()}"
    return_id = f"r-{uuid.uuid4().hex[:8]}"
    bridge = DispatchBridge(workflow_env.client)
    db = open_database(tmp_path / "bridge.db")
    async with Worker(
        workflow_env.client,
        task_queue=queue,
        workflows=[ReturnReceiptWaiter],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        handle = await workflow_env.client.start_workflow(
            ReturnReceiptWaiter.run,
            id=return_workflow_id(return_id),
            task_queue=queue,
            execution_timeout=timedelta(minutes=1),
        )
        event = _received(return_id)
        await bridge.on_event(event, db)
        signalled = await asyncio.wait_for(handle.result(), timeout=30)

        assert signalled == ReturnReceived(order_id="o-1", return_id=return_id, label_id="lbl-1")

        # Its saga has ended now, and another return has none: nothing to signal, no error.
        with caplog.at_level(logging.INFO, logger="orchestrator.dispatch_bridge"):
            await bridge.on_event(event, db)
            unknown = _received("r-nobody")
            await bridge.on_event(unknown, db)
    db.close()
    assert f"saga of return {return_id} has ended: receipt of {event.event_id}" in caplog.text
    assert f"saga of return r-nobody has ended: receipt of {unknown.event_id}" in caplog.text
