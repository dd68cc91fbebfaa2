"""What the routes of both sagas share: the id in the path, documented answers, step checks."""

import json
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Annotated, Any

from fastapi import Path
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse, ServerSentEvent

from orchestrator.api.models import EventView, ProblemDetail, SagaType
from orchestrator.api.service import SagaService

__all__ = [
    "NOT_FOUND",
    "REFUSED",
    "UNAVAILABLE",
    "UNREADABLE",
    "IdPath",
    "event_stream",
    "known_step",
    "saga_event_stream",
]

IdPath = Annotated[
    str,
    Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$"),
]
"""An order or return id in a path."""

_Responses = dict[int | str, dict[str, Any]]
NOT_FOUND: _Responses = {404: {"model": ProblemDetail, "description": "No saga for this id."}}
UNAVAILABLE: _Responses = {
    503: {"model": ProblemDetail, "description": "Temporal or the orchestrator does not answer."}
}
UNREADABLE: _Responses = {
    400: {"model": ProblemDetail, "description": "The body is not JSON text."},
    413: {"model": ProblemDetail, "description": "The body is over SAGA_API_MAX_BODY_BYTES."},
    415: {"model": ProblemDetail, "description": "The body is not sent as application/json."},
}
REFUSED: _Responses = {409: {"model": ProblemDetail, "description": "The saga refused the action."}}


def known_step(
    sagas: SagaService,
    step: str | None,
    where: tuple[str, str],
    saga_type: SagaType | None = None,
) -> None:
    """Refuse (422, at ``where``) a step that no saga of ``saga_type`` (or of either type) has."""
    names = sagas.step_names(saga_type)
    if step is not None and step not in names:
        raise RequestValidationError(
            [
                {
                    "type": "enum",
                    "loc": where,
                    "msg": f"Input should be one of {', '.join(names)}",
                    "input": step,
                }
            ]
        )


def event_stream(
    events: AsyncIterable[EventView], end: Callable[[], Awaitable[dict[str, str]]]
) -> EventSourceResponse:
    """A saga's ``events`` as Server-Sent Events (its type, its position as id, the event as
    JSON data), then an ``end`` message with what ``end()`` says once they are over."""

    async def messages() -> AsyncIterable[ServerSentEvent]:
        async for event in events:
            yield ServerSentEvent(
                data=event.model_dump_json(), event=event.event_type, id=str(event.position)
            )
        yield ServerSentEvent(data=json.dumps(await end()), event="end")

    return EventSourceResponse(messages())


def saga_event_stream(
    sagas: SagaService, saga_type: SagaType, saga_id: str, after: int
) -> EventSourceResponse:
    """The events of the order or return ``saga_id`` after position ``after`` as Server-Sent
    Events, ending with its saga's status (and a return's outcome) once it has ended."""
    if saga_type is SagaType.RETURN:

        async def return_end() -> dict[str, str]:
            view = await sagas.view_return(saga_id)
            return {"status": view.saga.status.value, "outcome": view.saga.outcome.value}

        return event_stream(sagas.follow_return(saga_id, after=after), return_end)

    async def order_end() -> dict[str, str]:
        view = await sagas.view(saga_id)
        return {"status": view.saga.status.value}

    return event_stream(sagas.follow(saga_id, after=after), order_end)
