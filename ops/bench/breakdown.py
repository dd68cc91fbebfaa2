"""Where a saga's time went, read from the histories of a sample of the run's sagas.

Each history is cut into what Temporal records: workflow tasks queued (from scheduled until
a worker's poll got them: the server's dispatch, which records the start, and the worker's
pollers) and running on the worker, activities likewise, and the wait for the carrier (the
dispatch signal, or the bare workflow's timer). What is left is "other".
"""

import asyncio
from collections.abc import Callable, Iterable, Sequence

from pydantic import BaseModel
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.service import RPCError

__all__ = [
    "BREAKDOWN_PARTS",
    "TimeBreakdown",
    "sample_breakdown",
    "sample_indexes",
    "split_history",
]

WORKFLOW_TASK_WAIT = "workflow tasks queued (scheduled → started)"
WORKFLOW_TASK_RUN = "workflow tasks running (started → completed)"
ACTIVITY_WAIT = "activities queued (scheduled → started)"
ACTIVITY_RUN = "activities running (started → completed)"
CARRIER_WAIT = "waiting for the carrier"
OTHER = "other"
BREAKDOWN_PARTS = (
    WORKFLOW_TASK_WAIT,
    WORKFLOW_TASK_RUN,
    ACTIVITY_WAIT,
    ACTIVITY_RUN,
    CARRIER_WAIT,
    OTHER,
)


class TimeBreakdown(BaseModel):
    """The mean time per saga in each part, over ``histories`` sagas of the run."""

    histories: int
    total_ms: float
    mean_ms: dict[str, float]
    events_per_history: float
    """History events per saga: each is a write on the Temporal server."""
    search_attribute_upserts: float
    """Upserts per saga: each is also a visibility write."""


_SPANS: dict["EventType.ValueType", tuple[str, Callable[[HistoryEvent], int]]] = {
    EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED: (
        WORKFLOW_TASK_WAIT,
        lambda event: event.workflow_task_started_event_attributes.scheduled_event_id,
    ),
    EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED: (
        WORKFLOW_TASK_RUN,
        lambda event: event.workflow_task_completed_event_attributes.started_event_id,
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED: (
        ACTIVITY_WAIT,
        lambda event: event.activity_task_started_event_attributes.scheduled_event_id,
    ),
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED: (
        ACTIVITY_RUN,
        lambda event: event.activity_task_completed_event_attributes.started_event_id,
    ),
    EventType.EVENT_TYPE_TIMER_FIRED: (
        CARRIER_WAIT,
        lambda event: event.timer_fired_event_attributes.started_event_id,
    ),
}
"""The events that close a span of a part, with the id of the event that opened it."""


def _seconds(event: HistoryEvent) -> float:
    return event.event_time.ToNanoseconds() / 1e9


def split_history(events: Sequence[HistoryEvent]) -> dict[str, float]:
    """One closed workflow's time, in seconds, by part (see the module's docstring)."""
    at: dict[int, float] = {}
    parts = dict.fromkeys(BREAKDOWN_PARTS, 0.0)
    last_task_completed: float | None = None
    carrier_waited = False
    for event in events:
        time = _seconds(event)
        at[event.event_id] = time
        kind = event.event_type
        if (span := _SPANS.get(kind)) is not None:
            part, opened_by = span
            parts[part] += time - at[opened_by(event)]
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_task_completed = time
        elif (
            kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED
            and not carrier_waited
            and last_task_completed is not None
        ):
            # The first signal is the dispatch; the saga had nothing else to do meanwhile.
            parts[CARRIER_WAIT] += max(time - last_task_completed, 0.0)
            carrier_waited = True
    if events:
        total = _seconds(events[-1]) - _seconds(events[0])
        parts[OTHER] = max(total - sum(parts.values()), 0.0)
    return parts


async def sample_breakdown(
    client: Client, workflow_ids: Iterable[str], *, concurrency: int = 8
) -> TimeBreakdown | None:
    """The mean breakdown of the closed workflows among ``workflow_ids``."""
    gate = asyncio.Semaphore(concurrency)

    async def read(workflow_id: str) -> list[HistoryEvent] | None:
        async with gate:
            try:
                history = await client.get_workflow_handle(workflow_id).fetch_history()
            except RPCError:
                return None
        events = list(history.events)
        completed = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED
        return events if events and events[-1].event_type == completed else None

    histories = [h for h in await asyncio.gather(*(read(i) for i in workflow_ids)) if h]
    if not histories:
        return None
    splits = [split_history(events) for events in histories]
    mean = {part: sum(s[part] for s in splits) / len(splits) * 1000 for part in BREAKDOWN_PARTS}
    upsert = EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES
    upserts = sum(sum(e.event_type == upsert for e in h) for h in histories)
    return TimeBreakdown(
        histories=len(histories),
        total_ms=round(sum(mean.values()), 1),
        mean_ms={part: round(ms, 1) for part, ms in mean.items()},
        events_per_history=round(sum(len(h) for h in histories) / len(histories), 1),
        search_attribute_upserts=round(upserts / len(histories), 1),
    )


def sample_indexes(count: int, size: int = 24) -> list[int]:
    """``size`` indexes spread evenly over ``range(count)``: ramp-up, steady state, ramp-down."""
    if count <= size:
        return list(range(count))
    return [round(i * (count - 1) / (size - 1)) for i in range(size)]
