"""``POST /orders``: place an order, which starts its saga."""

import logging

from fastapi import APIRouter, Response, status
from opentelemetry import trace

from orchestrator.api.deps import OrderPlacerDep, SagaServiceDep
from orchestrator.api.models import OrderAccepted, OrderRequest, ProblemDetail

router = APIRouter(tags=["orders"])

log = logging.getLogger(__name__)


@router.post(
    "/orders",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=OrderAccepted,
    responses={
        200: {"model": OrderAccepted, "description": "The same order was placed before."},
        400: {"model": ProblemDetail, "description": "The body is not JSON text."},
        413: {"model": ProblemDetail, "description": "The body is over SAGA_API_MAX_BODY_BYTES."},
        415: {"model": ProblemDetail, "description": "The body is not sent as application/json."},
        401: {"model": ProblemDetail, "description": "No bearer token, or an unknown one."},
        403: {"model": ProblemDetail, "description": "The token lacks orders:place."},
        409: {"model": ProblemDetail, "description": "The order id is taken by another order."},
        503: {"model": ProblemDetail, "description": "Temporal does not answer."},
    },
)
async def place_order(
    request: OrderRequest, sagas: SagaServiceDep, response: Response, principal: OrderPlacerDep
) -> OrderAccepted:
    """Start the order's saga (202), or answer with the saga already started for it (200).

    The same ``order_id`` with the same body starts nothing; with a different body it is a
    conflict (409). Bad input is refused (422) before anything starts.
    """
    accepted = await sagas.start(request, principal.name)
    trace.get_current_span().set_attribute("saga.order_id", accepted.order_id)
    log.info(
        "Order accepted" if accepted.created else "Order accepted again",
        extra={
            "orderId": accepted.order_id,
            "workflowId": accepted.workflow_id,
            "principal": principal.name,
        },
    )
    if not accepted.created:
        response.status_code = status.HTTP_200_OK
    return accepted
