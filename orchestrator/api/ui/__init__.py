"""The operators' web pages, served by the API under ``/ui`` (see docs/ui.md).

The saga map (per type, with live counts per step), a step's sagas, a saga's page with its
live events and the operator actions, and stuck work across types with the bulk repair.
Signed in with an API token, kept in a signed, HTTP-only session cookie.
"""

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import Response
from fastapi.staticfiles import StaticFiles
from temporalio.client import Client

from infra.config.settings import Settings
from orchestrator.api.ui.pages import (
    PageProblem,
    SignInRequired,
    problem_page,
    router,
    sign_in_redirect,
)
from orchestrator.api.ui.saga_map import WINDOWS, MapState, SagaMap, SagaMapReader, StepCounts
from orchestrator.api.ui.session import SESSION_COOKIE, UI_PATH, SessionKeeper, session_secret

__all__ = [
    "SESSION_COOKIE",
    "UI_PATH",
    "WINDOWS",
    "MapState",
    "SagaMap",
    "SagaMapReader",
    "SessionKeeper",
    "StepCounts",
    "add_ui",
    "is_ui_path",
    "refused_page",
    "session_secret",
    "start_ui",
]


def is_ui_path(path: str) -> bool:
    """Whether ``path`` is one of the web pages' (which take HTML forms)."""
    return path == UI_PATH or path.startswith(f"{UI_PATH}/")


def add_ui(app: FastAPI, settings: Settings) -> None:
    """Serve the pages on ``app``: routes, static files, and their error pages.

    The session keeper is made here, so a missing secret stops the API before it serves;
    the map reader (``app.state.saga_map``) once Temporal's client exists
    (:func:`start_ui`).

    Raises:
        ConfigurationError: in production, ``SAGA_UI_SESSION_SECRET`` is missing or short.
    """
    app.state.ui_sessions = SessionKeeper.from_settings(settings)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, PageProblem)
        return problem_page(request, exc)

    async def sign_in(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return sign_in_redirect(exc)

    app.add_exception_handler(PageProblem, problem)
    app.add_exception_handler(SignInRequired, sign_in)
    app.include_router(router)
    app.mount(
        f"{UI_PATH}/static",
        StaticFiles(directory=Path(__file__).parent / "static"),
        name="ui-static",
    )


def refused_page(request: Request, status: int, detail: str) -> Response:
    """A page's refusal of a request it cannot take (a validation error of a path or query
    value, a form field over its limit): an HTML page, as the pages' other problems."""
    return problem_page(request, PageProblem(status, "Not understood", detail))


def start_ui(app: FastAPI, client: Client) -> None:
    """Give the pages Temporal's client (at the API's start-up)."""
    app.state.saga_map = SagaMapReader(client, app.state.sagas.definitions)
