"""``/sagas``: each order's saga beside its events; the sagas of both types (orders' and
returns') listed, the stuck ones found, and their repair."""

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query
from fastapi.exceptions import RequestValidationError
from sse_starlette import EventSourceResponse

from contracts.activities import SagaStatus
from orchestrator.api.auth import Scope, require_scope
from orchestrator.api.deps import SagaOperatorDep, SagaServiceDep
from orchestrator.api.models import (
    STEP_NAMES,
    BulkRepairReport,
    BulkRepairRequest,
    CancelRequest,
    ProblemDetail,
    RepairRequest,
    RepairResult,
    SagaPage,
    SagaType,
    SagaView,
    SearchStatus,
    StuckSaga,
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
from orchestrator.api.service import SagaFilter

router = APIRouter(
    prefix="/sagas",
    tags=["sagas"],
    responses={
        401: {"model": ProblemDetail, "description": "No bearer token, or an unknown one."},
        403: {"model": ProblemDetail, "description": "The token lacks the route's scope."},
    },
)
_READ = [Depends(require_scope(Scope.SAGAS_READ))]
_TYPE_DESCRIPTION = "Only sagas of this type: order or return; default both."

OrderId = IdPath


@router.get("", response_model=SagaPage, responses=UNAVAILABLE, dependencies=_READ)
async def list_sagas(
    sagas: SagaServiceDep,
    saga_type: Annotated[
        SagaType | None, Query(alias="type", description=_TYPE_DESCRIPTION)
    ] = None,
    status: Annotated[
        SearchStatus | None, Query(description="RUNNING, COMPENSATING, ... REJECTED, EXPIRED")
    ] = None,
    step: Annotated[
        str | None,
        Query(
            max_length=64,
            description="The current step.",
            json_schema_extra={"enum": [*STEP_NAMES]},
        ),
    ] = None,
    customer_id: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
    ] = None,
    older_than_seconds: Annotated[int | None, Query(ge=0, le=10**8)] = None,
    newer_than_seconds: Annotated[int | None, Query(ge=0, le=10**8)] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> SagaPage:
    """Sagas by type, status, current step, customer and age (seconds since start), newest
    first."""
    known_step(sagas, step, ("query", "step"), saga_type)
    filters = SagaFilter(
        saga_type=saga_type,
        status=status,
        step=step,
        customer_id=customer_id,
        older_than_seconds=older_than_seconds,
        newer_than_seconds=newer_than_seconds,
    )
    try:
        return await sagas.list_sagas(filters, page_size=page_size, page_token=page_token)
    except ValueError as exc:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "page_token"),
                    "msg": str(exc),
                    "input": page_token,
                }
            ]
        ) from None


@router.get("/stuck", response_model=list[StuckSaga], responses=UNAVAILABLE, dependencies=_READ)
async def stuck_sagas(
    sagas: SagaServiceDep,
    older_than_seconds: Annotated[int, Query(ge=0, le=10**8)] = 300,
    step: Annotated[
        str | None, Query(max_length=64, json_schema_extra={"enum": [*STEP_NAMES]})
    ] = None,
    saga_type: Annotated[
        SagaType | None, Query(alias="type", description=_TYPE_DESCRIPTION)
    ] = None,
) -> list[StuckSaga]:
    """Running sagas whose current step (or compensation) has not moved for N seconds.

    Each names the step, the service that owns it, the pending activity's attempts and last
    failure, and how long it has been there. ``flagged_stuck`` says whether the saga's own
    retries ran out, which is when ``POST /sagas/{order_id}/repair`` (a return's:
    ``POST /returns/{return_id}/repair``) can move it.
    """
    known_step(sagas, step, ("query", "step"), saga_type)
    return await sagas.stuck(older_than_seconds, step=step, saga_type=saga_type)


@router.post(
    "/stuck/repair",
    response_model=BulkRepairReport,
    responses={**UNREADABLE, **UNAVAILABLE},
)
async def bulk_repair(
    request: BulkRepairRequest, sagas: SagaServiceDep, principal: SagaOperatorDep
) -> BulkRepairReport:
    """Repair every saga stuck on a step. ``dry_run`` (the default) shows what would be done;
    a real run acts at ``rate_per_second`` so that a recovering service is not flooded."""
    known_step(sagas, request.step, ("body", "step"), request.saga_type)
    return await sagas.bulk_repair(request, principal.name)


@router.get(
    "/{order_id}",
    response_model=SagaView,
    responses={**NOT_FOUND, **UNAVAILABLE},
    dependencies=_READ,
)
async def get_saga(order_id: OrderId, sagas: SagaServiceDep) -> SagaView:
    """The saga's status (steps, attempts, errors, failure reason) beside the order's events."""
    return await sagas.view(order_id)


@router.get(
    "/{order_id}/events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "One SSE message per event (its type, its position as id, the "
            "event as JSON data), then an `end` message once the saga has ended.",
        },
        **NOT_FOUND,
        **UNAVAILABLE,
    },
    dependencies=_READ,
)
async def follow_saga(
    order_id: OrderId,
    sagas: SagaServiceDep,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """The order's events as a live Server-Sent Events stream that ends when the saga ends.

    Send ``Last-Event-ID`` to resume after the event with that id.
    """
    await sagas.describe(order_id)  # a missing saga answers 404, not an empty stream
    return saga_event_stream(sagas, SagaType.ORDER, order_id, last_event_id or 0)


@router.post(
    "/{order_id}/cancel",
    status_code=202,
    response_model=SagaStatus,
    responses={**UNREADABLE, **NOT_FOUND, **REFUSED, **UNAVAILABLE},
)
async def cancel_saga(
    order_id: OrderId, request: CancelRequest, sagas: SagaServiceDep, principal: SagaOperatorDep
) -> SagaStatus:
    """Ask the saga to cancel the order: it undoes what was done, unless already dispatched
    (then the request is refused and recorded in the saga's notes)."""
    return await sagas.cancel(order_id, request, principal.name)


@router.post(
    "/{order_id}/repair",
    response_model=RepairResult,
    responses={**UNREADABLE, **NOT_FOUND, **REFUSED, **UNAVAILABLE},
)
async def repair_saga(
    order_id: OrderId, request: RepairRequest, sagas: SagaServiceDep, principal: SagaOperatorDep
) -> RepairResult:
    """Move a stuck step or compensation on: ``retry_now``, or ``resolve_manually`` (a person
    settled it by hand). Recorded in the saga's status and published as ``order.repaired``."""
    known_step(sagas, request.step, ("body", "step"), SagaType.ORDER)
    return await sagas.repair(order_id, request, principal.name)
