"""``/ops-log``: the operator log, every cancel, retry-now, resolve and bulk repair."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError

from orchestrator.api.auth import Scope, require_scope
from orchestrator.api.deps import SagaServiceDep
from orchestrator.api.models import OperatorLogPage, ProblemDetail, SagaType

router = APIRouter(
    prefix="/ops-log",
    tags=["ops-log"],
    responses={
        401: {"model": ProblemDetail, "description": "No bearer token, or an unknown one."},
        403: {"model": ProblemDetail, "description": "The token lacks the route's scope."},
    },
)


@router.get(
    "",
    response_model=OperatorLogPage,
    dependencies=[Depends(require_scope(Scope.SAGAS_READ))],
)
async def operator_log(
    sagas: SagaServiceDep,
    order_id: Annotated[
        str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
    ] = None,
    saga_type: Annotated[
        SagaType | None, Query(description="Only actions on sagas of this type.")
    ] = None,
    since_seconds: Annotated[
        int | None, Query(ge=0, le=10**8, description="Only actions of the last N seconds.")
    ] = None,
    page_size: Annotated[int, Query(ge=1, le=500)] = 50,
    page_token: Annotated[str | None, Query(max_length=32)] = None,
) -> OperatorLogPage:
    """Operator actions (who, why, when, which saga, the outcome), newest first; kept after
    the sagas have ended."""
    try:
        return sagas.operator_log(
            order_id=order_id,
            saga_type=saga_type,
            since_seconds=since_seconds,
            page_size=page_size,
            page_token=page_token,
        )
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
