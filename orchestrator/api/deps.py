"""Dependencies of the routes, as ``Annotated`` aliases."""

from typing import Annotated

from fastapi import Depends, Request
from temporalio.client import Client

from infra.config.settings import Settings
from orchestrator.api.auth import Principal, Scope, require_scope
from orchestrator.api.service import SagaService

__all__ = [
    "OrderPlacerDep",
    "SagaOperatorDep",
    "SagaReaderDep",
    "SagaServiceDep",
    "SettingsDep",
    "TemporalClientDep",
]


def _temporal_client(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def _sagas(request: Request) -> SagaService:
    service: SagaService = request.app.state.sagas
    return service


TemporalClientDep = Annotated[Client, Depends(_temporal_client)]
SettingsDep = Annotated[Settings, Depends(_settings)]
SagaServiceDep = Annotated[SagaService, Depends(_sagas)]

OrderPlacerDep = Annotated[Principal, Depends(require_scope(Scope.ORDERS_PLACE))]
"""Who places the order; the token must have ``orders:place``."""
SagaReaderDep = Annotated[Principal, Depends(require_scope(Scope.SAGAS_READ))]
"""Who looks at sagas; the token must have ``sagas:read``."""
SagaOperatorDep = Annotated[Principal, Depends(require_scope(Scope.SAGAS_OPERATE))]
"""Who cancels or repairs a saga; the token must have ``sagas:operate``."""
