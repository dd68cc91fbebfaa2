"""Returns: ``POST /orders/{order_id}/returns`` starts a return's saga; ``/returns/{return_id}``
shows it beside its events, follows them, and repairs its stuck steps."""

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Response, status
from opentelemetry import trace
from sse_starlette import EventSourceResponse

from orchestrator.api.auth import Scope, require_scope
from orchestrator.api.deps import OrderPlacerDep, SagaOperatorDep, SagaServiceDep
from orchestrator.api.models import (
    ProblemDetail,
    RepairRequest,
    RepairResult,
    ReturnAccepted,
    ReturnBody,
    ReturnView,
    SagaType,
)
from orchestrator.api.routes._common import (
    NOT_FOUND,
    REFUSED,
    UNAVAILABLE,
    UNREADABLE,
    IdPath,
    known_step,
    saga_event_stream,
)

router = APIRouter(
    tags=["returns"],
    responses={
        401: {"model": ProblemDetail, "description": "No bearer token, or an unknown one."},
        403: {"model": ProblemDetail, "description": "The token lacks the route's scope."},
    },
)
_READ = [Depends(require_scope(Scope.SAGAS_READ))]

log = logging.getLogger(__name__)


@router.post(
    "/orders/{order_id}/returns",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ReturnAccepted,
    responses={
        200: {"model": ReturnAccepted, "description": "The same return was asked for before."},
        **UNREADABLE,
        404: {"model": ProblemDetail, "description": "No order of this id was placed here."},
        409: {
            "model": ProblemDetail,
            "description": "The return id is taken by another return (other items, reason or "
            "order).",
        },
        **UNAVAILABLE,
    },
)
async def start_return(
    order_id: IdPath,
    request: ReturnBody,
    sagas: SagaServiceDep,
    response: Response,
    principal: OrderPlacerDep,
) -> ReturnAccepted:
    """Start the return's saga (202), or answer with the saga already started for it (200).

    The same ``return_id`` with the same body and order starts nothing; with another body or
    order it is a conflict (409). Bad input is refused (422) before anything starts; whether
    the items may come back is the saga's first step to decide (a refusal ends it REJECTED).
    """
    accepted = await sagas.start_return(order_id, request, principal.name)
    trace.get_current_span().set_attribute("saga.order_id", order_id)
    log.info(
        "Return accepted" if accepted.created else "Return accepted again",
        extra={
            "orderId": order_id,
            "returnId": accepted.return_id,
            "workflowId": accepted.workflow_id,
            "principal": principal.name,
        },
    )
    if not accepted.created:
        response.status_code = status.HTTP_200_OK
    return accepted


@router.get(
    "/returns/{return_id}",
    response_model=ReturnView,
    responses={**NOT_FOUND, **UNAVAILABLE},
    dependencies=_READ,
)
async def get_return(return_id: IdPath, sagas: SagaServiceDep) -> ReturnView:
    """The return's saga status (steps, outcome, errors) beside the return's events."""
    return await sagas.view_return(return_id)


@router.get(
    "/returns/{return_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE message per event of the return (its type, its position "
            "as id, the event as JSON data), then an `end` message once the saga has ended.",
        },
        **NOT_FOUND,
        **UNAVAILABLE,
    },
    dependencies=_READ,
)
async def follow_return(
    return_id: IdPath,
    sagas: SagaServiceDep,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """The return's events as a live Server-Sent Events stream that ends when its saga ends.

    Send ``Last-Event-ID`` to resume after the event with that id.
    """
    await sagas.describe_return(return_id)  # a missing saga answers 404, not an empty stream
    return saga_event_stream(sagas, SagaType.RETURN, return_id, last_event_id or 0)


@router.post(
    "/returns/{return_id}/repair",
    response_model=RepairResult,
    responses={**UNREADABLE, **NOT_FOUND, **REFUSED, **UNAVAILABLE},
)
async def repair_return(
    return_id: IdPath, request: RepairRequest, sagas: SagaServiceDep, principal: SagaOperatorDep
) -> RepairResult:
    """Move a return's stuck step or compensation on (a refund that keeps failing...):
    ``retry_now``, or ``resolve_manually``. Recorded in the saga's status and published as
    ``order.repaired`` on the return's order."""
    known_step(sagas, request.step, ("body", "step"), SagaType.RETURN)
    return await sagas.repair(return_id, request, principal.name, saga_type=SagaType.RETURN)
