"""What a workflow's history holds, read as Temporal's server stores it."""

from collections.abc import Iterator
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import WorkflowHistory


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
