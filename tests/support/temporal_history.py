"""What a workflow's history holds, read as Temporal's server stores it."""

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowHandle, WorkflowHistory


def payloads_in(message: Message) -> Iterator[Payload]:
    """Every payload anywhere in ``message``."""
    if isinstance(message, Payload):
        yield message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if isinstance(value, Message):
            items: Any = [value]
        elif hasattr(value, "values"):  # a map
            items = value.values()
        else:
            items = value
        for item in items:
            if isinstance(item, Message):
                yield from payloads_in(item)


def history_payloads(history: WorkflowHistory) -> list[Payload]:
    """Every payload of every event of ``history``."""
    return [payload for event in history.events for payload in payloads_in(event)]


def raw_history(history: WorkflowHistory) -> bytes:
    """The history as JSON and as protobuf bytes, to search for what must not be there."""
    return history.to_json().encode() + b"".join(
        event.SerializeToString() for event in history.events
    )


async def web_ui_metadata(handle: WorkflowHandle[Any, Any]) -> tuple[str | None, str]:
    """What the Temporal Web UI shows of a workflow beside its id: its summary (static, set at
    start) and its current details (the workflow's own, read with the built-in query)."""
    description = await handle.describe()
    metadata: WorkflowMetadata = await handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return await description.static_summary(), metadata.current_details
