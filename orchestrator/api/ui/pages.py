"""The web pages under ``/ui``: sign in, the saga map, a step's sagas, a saga, stuck work.

Pages are rendered on the server (Jinja2, autoescaped); ``static/ui.js`` only refreshes the
map's numbers and appends a saga's events as they arrive. Looking needs a session whose token
has ``sagas:read``; every form that acts posts the session's CSRF token and needs
``sagas:operate``, and acts through :class:`~orchestrator.api.service.SagaService`, as the
JSON routes do, with the token's name as the operator.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import jinja2
from fastapi import APIRouter, Depends, Form, Header, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from markupsafe import Markup, escape
from pydantic import ValidationError
from sse_starlette import EventSourceResponse
from temporalio.service import RPCError

from contracts.registry import EVENT_TYPES
from orchestrator.api.auth import Principal, Scope, TokenStore
from orchestrator.api.models import (
    BulkRepairReport,
    BulkRepairRequest,
    CancelRequest,
    RepairRequest,
    SagaType,
)
from orchestrator.api.routes import IdPath, saga_event_stream
from orchestrator.api.service import (
    ActionRefused,
    SagaNotFound,
    SagaService,
    SagaUnavailable,
)
from orchestrator.api.ui.saga_map import WINDOWS, MapState, SagaMapReader
from orchestrator.api.ui.session import SESSION_COOKIE, UI_PATH, Session, SessionKeeper

__all__ = ["PageProblem", "SignInRequired", "router", "templates"]

log = logging.getLogger(__name__)

_HERE = Path(__file__).parent
_NOTICE_COOKIE = "saga_notice"
_NOTICE_SECONDS = 120
_HOME = f"{UI_PATH}/map/order"
_PAGE_HEADERS = {
    # Scripts, styles, fetches and forms of this origin only; never in another site's frame
    # (a framed page's buttons could be clicked through a decoy); pages with CSRF tokens and
    # saga details are not kept in caches.
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _age(elapsed: timedelta) -> str:
    """A duration as people read one: 42 s, 5 min, 3 h, 2 d."""
    seconds = max(0, int(elapsed.total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)


def _breakable(name: str) -> Markup:
    """A step name that may wrap after its underscores (``schedule_<wbr>shipment``)."""
    return Markup("_<wbr>").join(escape(part) for part in name.split("_"))


templates.env.filters["age"] = _age
templates.env.filters["breakable"] = _breakable

router = APIRouter(prefix=UI_PATH, include_in_schema=False)


class SignInRequired(Exception):
    """The page needs a session; the browser is sent to sign in, then back to ``next_path``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


class PageProblem(Exception):
    """A page that cannot be shown, or a form that is refused: its status and why."""

    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.title = title
        self.detail = detail


@dataclass(frozen=True)
class Viewer:
    """Who looks at a page: the token's principal, its session, and its forms' CSRF token."""

    principal: Principal
    session: Session
    csrf: str

    @property
    def can_operate(self) -> bool:
        """Whether the page shows the forms that act."""
        return Scope.SAGAS_OPERATE in self.principal.scopes


def _keeper(request: Request) -> SessionKeeper:
    keeper: SessionKeeper = request.app.state.ui_sessions
    return keeper


def _sagas(request: Request) -> SagaService:
    sagas: SagaService = request.app.state.sagas
    return sagas


def _session_principal(request: Request) -> tuple[Session, Principal] | None:
    session = _keeper(request).read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    store: TokenStore = request.app.state.tokens
    principal = store.principal_by_sha256(session.token_sha256)
    return None if principal is None else (session, principal)


def _lacks(principal: Principal, scope: Scope, doing: str) -> PageProblem:
    return PageProblem(
        403,
        "Not allowed",
        f"The token {principal.name!r} lacks the scope {scope.value!r} that {doing} needs: "
        "sign out and sign in with a token that has it.",
    )


async def _viewer(request: Request) -> Viewer:
    found = _session_principal(request)
    if found is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    session, principal = found
    if Scope.SAGAS_READ not in principal.scopes:
        raise _lacks(principal, Scope.SAGAS_READ, "looking at sagas")
    return Viewer(principal, session, _keeper(request).csrf_token(session))


async def _poster(
    request: Request, csrf: Annotated[str | None, Form(max_length=200)] = None
) -> Viewer:
    """A form's sender: signed in, and the form carries the session's CSRF token."""
    found = _session_principal(request)
    if found is None:
        raise PageProblem(
            403,
            "Not signed in",
            "This form was sent without a session (or an expired one): sign in and send it "
            "again from the page.",
        )
    session, principal = found
    if not _keeper(request).csrf_ok(session, csrf):
        log.warning(
            "Form without this session's CSRF token refused: %s %s by %s",
            request.method,
            request.url.path,
            principal.name,
            extra={"principal": principal.name},
        )
        raise PageProblem(
            403,
            "Form refused",
            "The form did not carry this session's CSRF token, so it may not come from these "
            "pages: reload the page and send the form again.",
        )
    return Viewer(principal, session, _keeper(request).csrf_token(session))


async def _operator(viewer: Annotated[Viewer, Depends(_poster)], request: Request) -> Viewer:
    if not viewer.can_operate:
        raise _lacks(viewer.principal, Scope.SAGAS_OPERATE, "acting on sagas")
    log.info(
        "%s %s by %s",
        request.method,
        request.url.path,
        viewer.principal.name,
        extra={"principal": viewer.principal.name, "scope": Scope.SAGAS_OPERATE.value},
    )
    return viewer


ViewerDep = Annotated[Viewer, Depends(_viewer)]
OperatorDep = Annotated[Viewer, Depends(_operator)]
SagasDep = Annotated[SagaService, Depends(_sagas)]
_LOOKING = [Depends(_viewer)]
"""For routes that need a session with ``sagas:read`` but show no page of their own."""
Reason = Annotated[str, Form(max_length=500)]
"""A form's reason; empty is refused by the request models, with a message on the page."""


def _render(
    request: Request,
    template: str,
    viewer: Viewer | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    notice = _take_notice(request)
    response = templates.TemplateResponse(
        request,
        template,
        {
            "viewer": viewer,
            "notice": notice,
            "ui": UI_PATH,
            "saga_types": list(SagaType),
            "event_types": list(EVENT_TYPES),
            **context,
        },
        status_code=status_code,
    )
    if notice is not None:
        response.delete_cookie(_NOTICE_COOKIE, path=UI_PATH)
    response.headers.update(_PAGE_HEADERS)
    return response


def _notices(request: Request) -> URLSafeTimedSerializer:
    return _keeper(request).notices


def _take_notice(request: Request) -> dict[str, str] | None:
    cookie = request.cookies.get(_NOTICE_COOKIE)
    if not cookie:
        return None
    try:
        value = _notices(request).loads(cookie, max_age=_NOTICE_SECONDS)
    except BadSignature:
        return None
    return value if isinstance(value, dict) else None


def _back_with(request: Request, path: str, kind: str, text: str) -> RedirectResponse:
    """Redirect to ``path`` (after a form), which then shows ``text`` once."""
    response = RedirectResponse(path, status_code=303)
    response.set_cookie(
        _NOTICE_COOKIE,
        _notices(request).dumps({"kind": kind, "text": text}),
        max_age=_NOTICE_SECONDS,
        path=UI_PATH,
        secure=_keeper(request).secure,
        httponly=True,
        samesite="strict",
    )
    return response


_T = TypeVar("_T")


async def _shown(what: Callable[[], Awaitable[_T]]) -> _T:
    """``what()``, its failures as pages: no saga (404), a saga or Temporal not answering
    (503)."""
    try:
        return await what()
    except SagaNotFound as exc:
        raise PageProblem(404, "No such saga", f"{exc}: check the id.") from None
    except SagaUnavailable as exc:
        raise PageProblem(503, "The saga does not answer", str(exc)) from None
    except RPCError as exc:
        raise PageProblem(
            503, "Temporal does not answer", f"Temporal did not answer: {exc}; try again."
        ) from None


def _refusal(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
        for error in exc.errors(include_url=False)
    )


def _saga_path(saga_type: SagaType, saga_id: str) -> str:
    return f"{UI_PATH}/{'orders' if saga_type is SagaType.ORDER else 'returns'}/{saga_id}"


# --- Signing in and out ------------------------------------------------------------------


def _next_path(value: str | None) -> str:
    """Where to go after signing in: a page of these pages, never another site."""
    if value and value.startswith(f"{UI_PATH}/") and not value.startswith("//"):
        return value
    return _HOME


@router.get("")
@router.get("/")
async def home() -> RedirectResponse:
    """The order saga's map."""
    return RedirectResponse(_HOME, status_code=303)


@router.get("/signin")
async def signin_page(request: Request, next: str | None = None) -> HTMLResponse:
    """The sign-in form."""
    return _render(request, "signin.html", None, next_path=_next_path(next), error=None)


@router.post("/signin")
async def signin(
    request: Request,
    token: Annotated[str, Form(max_length=500)] = "",
    next: Annotated[str | None, Form(max_length=2000)] = None,
) -> Response:
    """Check the token; a good one gets a session cookie and goes on to the page it asked for."""
    store: TokenStore = request.app.state.tokens
    principal = store.principal(token.strip()) if token.strip() else None
    error = None
    if principal is None:
        error = "That token is not one this API accepts: check it and try again."
    elif Scope.SAGAS_READ not in principal.scopes:
        error = f"The token {principal.name!r} lacks the scope 'sagas:read' these pages need."
    if error is not None:
        log.warning("Sign-in to the web pages refused: %s", error)
        return _render(request, "signin.html", None, 401, next_path=_next_path(next), error=error)
    assert principal is not None
    response = RedirectResponse(_next_path(next), status_code=303)
    _keeper(request).issue(response, token.strip())
    log.info("Signed in to the web pages: %s", principal.name, extra={"principal": principal.name})
    return response


@router.post("/signout", dependencies=[Depends(_poster)])
async def signout(request: Request) -> RedirectResponse:
    """End the session."""
    response = RedirectResponse(f"{UI_PATH}/signin", status_code=303)
    _keeper(request).clear(response)
    return response


# --- The map -----------------------------------------------------------------------------


def _window(window: str) -> str:
    if window not in WINDOWS:
        raise PageProblem(
            400, "Unknown window", f"window must be one of {', '.join(WINDOWS)}, not {window!r}."
        )
    return window


@router.get("/map/{saga_type}")
async def map_page(
    request: Request,
    saga_type: SagaType,
    viewer: ViewerDep,
    window: Annotated[str, Query(max_length=8)] = "24h",
) -> HTMLResponse:
    """The steps of one type of saga with the running sagas at each, and the window's ends."""
    reader: SagaMapReader = request.app.state.saga_map
    saga_map = await _shown(lambda: reader.read(saga_type, _window(window)))
    return _render(
        request,
        "map.html",
        viewer,
        saga_map=saga_map,
        windows=list(WINDOWS),
        states=MapState,
    )


@router.get("/map/{saga_type}/counts", dependencies=_LOOKING)
async def map_counts(
    request: Request,
    saga_type: SagaType,
    window: Annotated[str, Query(max_length=8)] = "24h",
) -> JSONResponse:
    """The map's numbers as JSON, which the page polls."""
    reader: SagaMapReader = request.app.state.saga_map
    saga_map = await _shown(lambda: reader.read(saga_type, _window(window)))
    return JSONResponse(saga_map.as_json(), headers={"Cache-Control": "no-store"})


@router.get("/map/{saga_type}/steps/{step}")
async def step_page(
    request: Request,
    saga_type: SagaType,
    step: str,
    viewer: ViewerDep,
    sagas: SagasDep,
    state: MapState = MapState.RUNNING,
    page_token: Annotated[str | None, Query(max_length=4000)] = None,
) -> HTMLResponse:
    """The running sagas at one step in one state, a page at a time."""
    if step not in sagas.definitions[saga_type].step_names:
        raise PageProblem(404, "No such step", f"The {saga_type.value} saga has no step {step!r}.")
    reader: SagaMapReader = request.app.state.saga_map
    try:
        page = await _shown(lambda: reader.sagas_at(saga_type, step, state, page_token))
    except ValueError as exc:
        raise PageProblem(400, "Bad page token", f"{exc}: start from the map again.") from None
    return _render(
        request,
        "step.html",
        viewer,
        saga_type=saga_type,
        step=step,
        state=state,
        page=page,
        now=datetime.now(UTC),
        saga_path=_saga_path,
    )


# --- One saga ----------------------------------------------------------------------------


@router.get("/orders/{order_id}")
async def order_page(
    request: Request, order_id: IdPath, viewer: ViewerDep, sagas: SagasDep
) -> HTMLResponse:
    """An order's saga: status, steps, notes, events (live), the Web UI link, the actions."""
    view = await _shown(lambda: sagas.view(order_id))
    return _render(
        request,
        "saga.html",
        viewer,
        saga_type=SagaType.ORDER,
        saga_id=order_id,
        order_id=order_id,
        execution_status=view.execution_status,
        saga=view.saga,
        events=view.events,
        links=view.links,
        base=_saga_path(SagaType.ORDER, order_id),
    )


@router.get("/returns/{return_id}")
async def return_page(
    request: Request, return_id: IdPath, viewer: ViewerDep, sagas: SagasDep
) -> HTMLResponse:
    """A return's saga, as an order's page shows one."""
    view = await _shown(lambda: sagas.view_return(return_id))
    return _render(
        request,
        "saga.html",
        viewer,
        saga_type=SagaType.RETURN,
        saga_id=return_id,
        order_id=view.order_id,
        execution_status=view.execution_status,
        saga=view.saga,
        events=view.events,
        links=view.links,
        base=_saga_path(SagaType.RETURN, return_id),
    )


def _after(after: int | None, last_event_id: int | None) -> int:
    return max(after or 0, last_event_id or 0)


@router.get("/orders/{order_id}/events", dependencies=_LOOKING)
async def order_events(
    order_id: IdPath,
    sagas: SagasDep,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """The order's events as they arrive (Server-Sent Events), for the saga's page."""
    await _shown(lambda: sagas.describe(order_id))
    return saga_event_stream(sagas, SagaType.ORDER, order_id, _after(after, last_event_id))


@router.get("/returns/{return_id}/events", dependencies=_LOOKING)
async def return_events(
    return_id: IdPath,
    sagas: SagasDep,
    after: Annotated[int | None, Query(ge=0, le=2**62)] = None,
    last_event_id: Annotated[int | None, Header(ge=0, le=2**62)] = None,
) -> EventSourceResponse:
    """The return's events as they arrive (Server-Sent Events), for the saga's page."""
    await _shown(lambda: sagas.describe_return(return_id))
    return saga_event_stream(sagas, SagaType.RETURN, return_id, _after(after, last_event_id))


@router.post("/orders/{order_id}/cancel")
async def cancel_order(
    request: Request, order_id: IdPath, viewer: OperatorDep, sagas: SagasDep, reason: Reason = ""
) -> RedirectResponse:
    """Ask the order's saga to cancel; back to its page with the answer."""
    back = _saga_path(SagaType.ORDER, order_id)
    try:
        cancel = CancelRequest(reason=reason, requested_by=viewer.principal.name)
    except ValidationError as exc:
        return _back_with(request, back, "error", f"Not sent: {_refusal(exc)}")
    try:
        status = await _shown(lambda: sagas.cancel(order_id, cancel, viewer.principal.name))
    except ActionRefused as exc:
        return _back_with(request, back, "error", f"Refused: {exc}")
    return _back_with(request, back, "ok", f"Cancel requested; the saga is {status.status.value}.")


async def _repair(
    request: Request,
    saga_type: SagaType,
    saga_id: str,
    form: tuple[str, str, str],
    viewer: Viewer,
    sagas: SagaService,
) -> RedirectResponse:
    step, action, reason = form
    back = _saga_path(saga_type, saga_id)
    if step not in sagas.step_names(saga_type):
        return _back_with(request, back, "error", f"Not sent: no step {step!r}.")
    try:
        repair = RepairRequest(
            action=action,  # validated by the model
            step=step,
            operator=viewer.principal.name,
            reason=reason,
        )
    except ValidationError as exc:
        return _back_with(request, back, "error", f"Not sent: {_refusal(exc)}")
    try:
        result = await _shown(
            lambda: sagas.repair(saga_id, repair, viewer.principal.name, saga_type=saga_type)
        )
    except ActionRefused as exc:
        return _back_with(request, back, "error", f"Refused: {exc}")
    return _back_with(request, back, "ok", f"{result.action} {result.step}: {result.detail}")


StepForm = Annotated[str, Form(max_length=64)]
ActionForm = Annotated[str, Form(max_length=32)]


@router.post("/orders/{order_id}/repair")
async def repair_order(
    request: Request,
    order_id: IdPath,
    viewer: OperatorDep,
    sagas: SagasDep,
    step: StepForm = "",
    action: ActionForm = "",
    reason: Reason = "",
) -> RedirectResponse:
    """Retry a stuck step now or resolve it by hand; back to the saga's page."""
    return await _repair(request, SagaType.ORDER, order_id, (step, action, reason), viewer, sagas)


@router.post("/returns/{return_id}/repair")
async def repair_return(
    request: Request,
    return_id: IdPath,
    viewer: OperatorDep,
    sagas: SagasDep,
    step: StepForm = "",
    action: ActionForm = "",
    reason: Reason = "",
) -> RedirectResponse:
    """Retry a stuck step of a return now or resolve it by hand; back to its page."""
    return await _repair(request, SagaType.RETURN, return_id, (step, action, reason), viewer, sagas)


# --- Stuck work --------------------------------------------------------------------------


@router.get("/stuck")
async def stuck_page(
    request: Request,
    viewer: ViewerDep,
    sagas: SagasDep,
    older_than: Annotated[int, Query(ge=0, le=10**8)] = 300,
) -> HTMLResponse:
    """Running sagas of both types whose step has not moved for a while; the bulk repair."""
    stuck = await _shown(lambda: sagas.stuck(older_than))
    return _render(
        request,
        "stuck.html",
        viewer,
        stuck=stuck,
        older_than=older_than,
        step_names=sagas.step_names(),
        report=None,
        selection={
            "saga_type": "",
            "step": "",
            "action": "retry_now",
            "reason": "",
            "older_than": older_than,
        },
        error=None,
        saga_path=_saga_path,
    )


@router.post("/stuck/repair")
async def bulk_repair(
    request: Request,
    viewer: OperatorDep,
    sagas: SagasDep,
    step: StepForm = "",
    action: ActionForm = "",
    reason: Reason = "",
    saga_type: Annotated[str, Form(max_length=16)] = "",
    older_than: Annotated[int, Form(ge=0, le=30 * 24 * 3600)] = 300,
    apply: Annotated[str | None, Form(max_length=8)] = None,
) -> HTMLResponse:
    """The bulk repair: a dry run showing what would be done, or (``apply``) done."""
    selection = {
        "saga_type": saga_type,
        "step": step,
        "action": action,
        "reason": reason,
        "older_than": older_than,
    }
    report: BulkRepairReport | None = None
    error = None
    try:
        bulk = BulkRepairRequest(
            action=action,  # validated by the model
            step=step,
            older_than_seconds=older_than,
            saga_type=SagaType(saga_type) if saga_type else None,
            operator=viewer.principal.name,
            reason=reason,
            dry_run=apply is None,
        )
    except ValidationError as exc:
        error = f"Not run: {_refusal(exc)}"
    except ValueError:
        error = f"Not run: no saga type {saga_type!r}."
    else:
        if step not in sagas.step_names(bulk.saga_type):
            error = f"Not run: no step {step!r}."
        else:
            report = await _shown(lambda: sagas.bulk_repair(bulk, viewer.principal.name))
    stuck = await _shown(lambda: sagas.stuck(older_than))
    return _render(
        request,
        "stuck.html",
        viewer,
        400 if error else 200,
        stuck=stuck,
        older_than=older_than,
        step_names=sagas.step_names(),
        report=report,
        selection=selection,
        error=error,
        saga_path=_saga_path,
    )


def problem_page(request: Request, problem: PageProblem) -> HTMLResponse:
    """The page of a :class:`PageProblem`."""
    found = _session_principal(request)
    viewer = None
    if found is not None:
        session, principal = found
        viewer = Viewer(principal, session, _keeper(request).csrf_token(session))
    return _render(
        request,
        "problem.html",
        viewer,
        problem.status,
        title=problem.title,
        detail=problem.detail,
    )


def sign_in_redirect(problem: SignInRequired) -> RedirectResponse:
    """Where a page that needs a session sends the browser."""
    return RedirectResponse(
        f"{UI_PATH}/signin?next={quote(problem.next_path, safe='')}", status_code=303
    )
