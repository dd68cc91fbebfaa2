"""Liveness and readiness of the orchestrator API."""

import asyncio
from datetime import timedelta

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.service import RPCError

from infra.config.kafka import kafka_connection
from orchestrator.api.deps import SettingsDep, TemporalClientDep
from runtime import KafkaUnavailableError, wait_for_kafka

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """The process answers."""

    status: str


class Readiness(BaseModel):
    """Whether the engines the API needs answer it: ``ok``, or what went wrong."""

    status: str
    temporal: str
    kafka: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process lives (liveness)."""
    return Health(status="ok")


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Temporal or Kafka does not answer."}},
)
async def readyz(temporal: TemporalClientDep, settings: SettingsDep) -> JSONResponse:
    """Temporal and Kafka answer (readiness): 200, or 503 naming the one that does not."""

    async def temporal_state() -> str:
        try:
            await temporal.workflow_service.get_system_info(
                GetSystemInfoRequest(), timeout=timedelta(seconds=2)
            )
        except RPCError as exc:
            return f"does not answer: {exc}"
        return "ok"

    async def kafka_state() -> str:
        try:
            await wait_for_kafka(kafka_connection(settings), wait_seconds=2)
        except KafkaUnavailableError as exc:
            return f"does not answer: {exc}"
        return "ok"

    temporal_now, kafka_now = await asyncio.gather(temporal_state(), kafka_state())
    ready = temporal_now == kafka_now == "ok"
    body = Readiness(status="ok" if ready else "not ready", temporal=temporal_now, kafka=kafka_now)
    return JSONResponse(status_code=200 if ready else 503, content=body.model_dump())
