"""A typed client of the orchestrator API, for `saga`'s operations commands and for scripts.

Requests are built and answers parsed with the API's own models (``orchestrator.api.models``),
so the API stays the one implementation of each operation. Every failure, whether a refusal
or an API that does not answer, is one ``OrchestratorApiError`` with a one-line message.
"""

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import TypeAdapter, ValidationError

from contracts.activities import SagaPhase, SagaStatus
from orchestrator.api.models import (
    BulkRepairReport,
    BulkRepairRequest,
    CancelRequest,
    EventView,
    OperatorLogPage,
    OrderAccepted,
    OrderRequest,
    RepairRequest,
    RepairResult,
    ReturnAccepted,
    ReturnBody,
    ReturnView,
    SagaPage,
    SagaType,
    SagaView,
    SearchStatus,
    StuckSaga,
)

__all__ = ["OrchestratorApiClient", "OrchestratorApiError", "SagaEnded", "describe_field_errors"]

_Answer = TypeVar("_Answer")
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


class OrchestratorApiError(Exception):
    """The API refused a request or did not answer; the message is one line for a person.

    Attributes:
        status: the HTTP status of the refusal (404, 409, 422, 503...), or ``None`` when the
            API did not answer at all.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.status = status


@dataclass(frozen=True)
class SagaEnded:
    """The last message of a saga's event stream: the saga has ended with ``status`` (and,
    for a return, ``outcome``: COMPLETED, REJECTED, EXPIRED or CANCELLED)."""

    status: str
    outcome: str | None = None


def describe_field_errors(
    errors: Iterable[Mapping[str, Any]], names: Mapping[str, str] | None = None
) -> str:
    """Pydantic's (or FastAPI's 422) errors as ``field: reason (got value)``, joined by ``;``.

    Args:
        errors: items with ``loc``, ``msg`` and ``input``, as ``ValidationError.errors()``
            and FastAPI's ``detail`` list give them.
        names: how to call a top-level field instead (``rate_per_second`` -> ``--rate``).
    """
    described = []
    for error in errors:
        loc = [str(part) for part in error.get("loc", ())]
        if loc and loc[0] in _LOCATIONS:
            loc = loc[1:]
        if loc and names and loc[0] in names:
            loc[0] = names[loc[0]]
        field = ".".join(loc) or "the request body"
        text = f"{field}: {error.get('msg', 'invalid')}"
        value = error.get("input")
        if isinstance(value, str | int | float | bool):
            text += f" (got {value!r})"
        described.append(text)
    return "; ".join(described)


class OrchestratorApiClient:
    """The orchestrator API over HTTP: one method per endpoint, answers as the API's models.

    Use it as a context manager (or call ``close``). Every method raises
    ``OrchestratorApiError`` when the API refuses or does not answer.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """``headers``: sent with every request; the bearer token's, from
        :func:`infra.config.settings.api_headers`."""
        self.base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._http = httpx.Client(
            base_url=self.base_url, timeout=timeout, transport=transport, headers=headers
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    # --- Orders ------------------------------------------------------------------------

    def place_order(self, order: OrderRequest | Mapping[str, Any]) -> OrderAccepted:
        """``POST /orders``: start the order's saga, or find the one started for it.

        A mapping is sent as it is, for the API to validate (a 422 names the fields).
        """
        body = (
            order.model_dump(mode="json", exclude_none=True)
            if isinstance(order, OrderRequest)
            else dict(order)
        )
        return self._parse(OrderAccepted, self._send("POST", "/orders", json=body).text)

    # --- Returns -----------------------------------------------------------------------

    def start_return(
        self, order_id: str, request: ReturnBody | Mapping[str, Any]
    ) -> ReturnAccepted:
        """``POST /orders/{order_id}/returns``: start the return's saga, or find the one
        started for it.

        A mapping is sent as it is, for the API to validate (a 422 names the fields).
        """
        body = (
            request.model_dump(mode="json", exclude_none=True)
            if isinstance(request, ReturnBody)
            else dict(request)
        )
        path = "/orders/" + quote(order_id, safe="") + "/returns"
        return self._parse(ReturnAccepted, self._send("POST", path, json=body).text)

    def get_return(self, return_id: str) -> ReturnView:
        """``GET /returns/{return_id}``: the return's saga status beside its events."""
        return self._parse(ReturnView, self._send("GET", _return_path(return_id)).text)

    def follow_return(
        self, return_id: str, *, last_event_id: int | None = None
    ) -> Iterator[EventView | SagaEnded]:
        """``GET /returns/{return_id}/events``: each event as it arrives, then ``SagaEnded``."""
        return self._follow(
            _return_path(return_id) + "/events",
            last_event_id,
            f"the event stream of return {return_id!r} stopped before the saga ended: "
            "follow it again (`saga return show RETURN_ID --follow`)",
        )

    # --- Sagas -------------------------------------------------------------------------

    def list_sagas(
        self,
        *,
        saga_type: SagaType | None = None,
        status: SearchStatus | SagaPhase | None = None,
        step: str | None = None,
        customer_id: str | None = None,
        older_than_seconds: int | None = None,
        newer_than_seconds: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> SagaPage:
        """``GET /sagas``: one page of the sagas that match, newest first."""
        params = {
            "type": saga_type.value if saga_type is not None else None,
            "status": status.value if status is not None else None,
            "step": step,
            "customer_id": customer_id,
            "older_than_seconds": older_than_seconds,
            "newer_than_seconds": newer_than_seconds,
            "page_size": page_size,
            "page_token": page_token,
        }
        return self._parse(SagaPage, self._send("GET", "/sagas", params=params).text)

    def stuck_sagas(
        self,
        older_than_seconds: int = 300,
        step: str | None = None,
        saga_type: SagaType | None = None,
    ) -> list[StuckSaga]:
        """``GET /sagas/stuck``: running sagas whose step has not moved for that long."""
        params = {
            "older_than_seconds": older_than_seconds,
            "step": step,
            "type": saga_type.value if saga_type is not None else None,
        }
        response = self._send("GET", "/sagas/stuck", params=params)
        return self._parse(list[StuckSaga], response.text)

    def bulk_repair(self, request: BulkRepairRequest) -> BulkRepairReport:
        """``POST /sagas/stuck/repair``: one repair for every saga stuck on a step.

        A real run paces itself at ``rate_per_second`` with jitter (each wait at most one and
        a half intervals), so it is given that long to answer.
        """
        pacing = 0.0 if request.dry_run else 1.5 * request.limit / request.rate_per_second
        response = self._send(
            "POST",
            "/sagas/stuck/repair",
            json=request.model_dump(mode="json"),
            timeout=self._timeout + pacing,
        )
        return self._parse(BulkRepairReport, response.text)

    def operator_log(
        self,
        *,
        order_id: str | None = None,
        saga_type: SagaType | None = None,
        since_seconds: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> OperatorLogPage:
        """``GET /ops-log``: one page of the operator log, newest first."""
        params = {
            "order_id": order_id,
            "saga_type": saga_type.value if saga_type is not None else None,
            "since_seconds": since_seconds,
            "page_size": page_size,
            "page_token": page_token,
        }
        return self._parse(OperatorLogPage, self._send("GET", "/ops-log", params=params).text)

    def get_saga(self, order_id: str) -> SagaView:
        """``GET /sagas/{order_id}``: the saga's status beside the order's events."""
        return self._parse(SagaView, self._send("GET", _saga_path(order_id)).text)

    def follow_saga(
        self, order_id: str, *, last_event_id: int | None = None
    ) -> Iterator[EventView | SagaEnded]:
        """``GET /sagas/{order_id}/events``: each event as it arrives, then ``SagaEnded``.

        Args:
            order_id: the order.
            last_event_id: resume after the event at this position.
        """
        return self._follow(
            _saga_path(order_id) + "/events",
            last_event_id,
            f"the event stream of order {order_id!r} stopped before the saga ended: "
            "follow it again (`saga show ORDER_ID --follow`)",
        )

    def _follow(
        self, path: str, last_event_id: int | None, stopped: str
    ) -> Iterator[EventView | SagaEnded]:
        headers = {"Accept": "text/event-stream"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        # Events can be minutes apart: wait for the next one as long as it takes.
        timeout = httpx.Timeout(self._timeout, read=None)
        try:
            with self._http.stream("GET", path, headers=headers, timeout=timeout) as response:
                if response.is_error:
                    response.read()
                    raise _refusal(response)
                for event, data in _server_sent_events(response.iter_lines()):
                    if event == "end":
                        end = json.loads(data)
                        outcome = end.get("outcome")
                        yield SagaEnded(
                            status=str(end["status"]),
                            outcome=str(outcome) if outcome is not None else None,
                        )
                        return
                    yield self._parse(EventView, data)
        except httpx.HTTPError as exc:
            raise self._unanswered(exc) from None
        raise OrchestratorApiError(stopped)

    def cancel_saga(self, order_id: str, request: CancelRequest) -> SagaStatus:
        """``POST /sagas/{order_id}/cancel``: ask the saga to cancel the order."""
        response = self._send(
            "POST", _saga_path(order_id) + "/cancel", json=request.model_dump(mode="json")
        )
        return self._parse(SagaStatus, response.text)

    def repair_saga(
        self, saga_id: str, request: RepairRequest, *, saga_type: SagaType = SagaType.ORDER
    ) -> RepairResult:
        """``POST /sagas/{order_id}/repair`` (a return's: ``POST /returns/{return_id}/repair``):
        retry a stuck step now, or settle it by hand."""
        path = _saga_path(saga_id) if saga_type is SagaType.ORDER else _return_path(saga_id)
        response = self._send("POST", path + "/repair", json=request.model_dump(mode="json"))
        return self._parse(RepairResult, response.text)

    # --- Helpers -----------------------------------------------------------------------

    def _send(
        self,
        method: str,
        path: str,
        *,
        json: object = None,
        params: Mapping[str, str | int | None] | None = None,
        timeout: float | None = None,
    ) -> httpx.Response:
        query = {name: value for name, value in (params or {}).items() if value is not None}
        try:
            response = self._http.request(
                method,
                path,
                json=json,
                params=query,
                timeout=timeout if timeout is not None else self._timeout,
            )
        except httpx.HTTPError as exc:
            raise self._unanswered(exc) from None
        if response.is_error:
            raise _refusal(response)
        return response

    def _unanswered(self, exc: httpx.HTTPError) -> OrchestratorApiError:
        if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
            return OrchestratorApiError(
                f"the orchestrator API at {self.base_url} does not answer: "
                "start the stack with `saga up`, or set SAGA_API_PORT"
            )
        if isinstance(exc, httpx.TimeoutException):
            return OrchestratorApiError(
                f"the orchestrator API at {self.base_url} did not answer in time "
                f"({type(exc).__name__}): see `saga logs api`"
            )
        return OrchestratorApiError(
            f"the orchestrator API at {self.base_url} failed: {exc or type(exc).__name__}"
        )

    def _parse(self, kind: type[_Answer], text: str) -> _Answer:
        try:
            return TypeAdapter(kind).validate_json(text)
        except ValidationError as exc:
            raise OrchestratorApiError(
                f"the orchestrator API at {self.base_url} answered what this client cannot "
                f"read (is it another version?): {describe_field_errors(exc.errors())}"
            ) from None


def _saga_path(order_id: str) -> str:
    return "/sagas/" + quote(order_id, safe="")


def _return_path(return_id: str) -> str:
    return "/returns/" + quote(return_id, safe="")


def _refusal(response: httpx.Response) -> OrchestratorApiError:
    """The API's refusal as one line: the fields of a 422, otherwise its ``detail``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    status = response.status_code
    if status == 422 and isinstance(detail, list):
        message = "invalid request: " + describe_field_errors(
            item for item in detail if isinstance(item, dict)
        )
    elif isinstance(detail, str) and detail != response.reason_phrase:
        message = detail
    else:
        # Not one of the API's own answers: a route that does not exist, a proxy's error page.
        request = response.request
        message = f"{request.method} {request.url} answered {status} {response.reason_phrase}"
        if isinstance(detail, str) and status == 404:
            message += ": is SAGA_API_PORT the orchestrator API's port?"
    return OrchestratorApiError(message, status=status)


def _server_sent_events(lines: Iterable[str]) -> Iterator[tuple[str, str]]:
    """(event type, data) of each message of a ``text/event-stream``."""
    event = "message"
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
            continue
        if line.startswith(":"):
            continue  # a comment: the server's keep-alive ping
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        yield event, "\n".join(data)
