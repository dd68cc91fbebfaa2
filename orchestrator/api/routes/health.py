"""Liveness of the orchestrator API."""

from datetime import timedelta

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from orchestrator.api.deps import TemporalClientDep

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The API's health: it answers, and Temporal answers it."""

    status: str
    temporal: str


@router.get("/healthz", response_model=Health)
async def healthz(temporal: TemporalClientDep) -> Health:
    """Answer 200 while Temporal answers the API, 503 otherwise."""
    try:
        await temporal.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=2)
        )
    except RPCError as exc:
        raise HTTPException(status_code=503, detail=f"Temporal does not answer: {exc}") from None
    return Health(status="ok", temporal="ok")
