"""Sagas as clients and operators see them: start, look, list, find the stuck, repair.

Temporal knows where each saga is (the ``status`` query, the visibility store's search
attributes, the pending activities); the read model knows what each service said (the
timeline). This module puts the two side by side for the routes, for both of the
orchestrator's sagas: an order's (``OrderSaga``, found by its order id) and a return's
(``ReturnSaga``, found by its return id; its events are those of its order that name it).
"""

import asyncio
import base64
import binascii
import contextlib
import hashlib
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from random import Random
from typing import TypeVar

from temporalio.api.enums.v1 import PendingActivityState
from temporalio.api.workflow.v1 import PendingActivityInfo
from temporalio.client import (
    Client,
    WorkflowExecution,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
)
from temporalio.common import (
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from contracts.activities import (
    CANCEL_ORDER_SIGNAL,
    ORDER_SAGA_WORKFLOW,
    RESOLVE_MANUALLY_UPDATE,
    RETRY_NOW_UPDATE,
    RETURN_SAGA_WORKFLOW,
    STATUS_QUERY,
    CancelOrderRequest,
    OperatorActionResult,
    OrderSagaInput,
    ResolveManuallyRequest,
    RetryNowRequest,
    ReturnSagaInput,
    ReturnStatus,
    SagaPhase,
    SagaStatus,
    return_workflow_id,
    saga_workflow_id,
)
from contracts.events import OrderRepaired, OrderRepairedData
from contracts.task_queues import ORCHESTRATOR
from infra.config.settings import Settings
from orchestrator.api.models import (
    BulkOutcome,
    BulkRepairItem,
    BulkRepairReport,
    BulkRepairRequest,
    BulkSelection,
    CancelRequest,
    EventView,
    OperatorLogPage,
    OperatorOutcome,
    OrderAccepted,
    OrderRequest,
    RepairRequest,
    RepairResult,
    ReturnAccepted,
    ReturnBody,
    ReturnView,
    SagaLinks,
    SagaPage,
    SagaSummary,
    SagaType,
    SagaView,
    SearchStatus,
    StuckSaga,
)
from orchestrator.api.ops_log import OperatorLog, OperatorRecord
from orchestrator.api.pacing import jittered_waits
from orchestrator.queries import OrderQueries
from orchestrator.saga import SAGA_STATUS_KEY, SAGA_STEP_KEY, SagaDefinition
from orchestrator.timeline import Timeline
from orchestrator.workflows.order_saga import (
    CUSTOMER_ID_KEY,
    ORDER_ID_KEY,
    ORDER_SAGA,
    start_attributes,
    start_summary,
)
from orchestrator.workflows.return_saga import RETURN_SAGA
from orchestrator.workflows.return_saga import start_attributes as return_start_attributes
from orchestrator.workflows.return_saga import start_summary as return_start_summary
from runtime import Database, Outbox, transaction

__all__ = [
    "ActionRefused",
    "OrderConflict",
    "OrderNotFound",
    "ReturnConflict",
    "SagaFilter",
    "SagaNotFound",
    "SagaService",
    "SagaUnavailable",
]

REQUEST_DIGEST_MEMO = "request_digest"
"""Memo of each saga started by the API: the fingerprint of the order request."""
PLACED_BY_MEMO = "placed_by"
"""Memo of each saga started by the API: the name of the token that placed the order."""

_END_EVENTS = frozenset({"order.completed.v1", "order.cancelled.v1"})
_RETURN_END_EVENTS = frozenset({"return.completed.v1", "return.rejected.v1", "return.expired.v1"})
_DAY_SECONDS = 24 * 3600
_CANCEL_REFUSALS = frozenset({"cancel-refused", "cancel-ignored"})
_SOURCE = "orchestrator-api"
_RPC_TIMEOUT = timedelta(seconds=5)
_LOOKUPS_AT_ONCE = 16
_NO_ANSWER = (
    RPCStatusCode.CANCELLED,
    RPCStatusCode.DEADLINE_EXCEEDED,
    RPCStatusCode.UNAVAILABLE,
)


class SagaNotFound(LookupError):
    """No saga for this order id (or return id)."""


class OrderNotFound(LookupError):
    """No order of this id was placed here: nothing to return."""


class OrderConflict(Exception):
    """The order id is taken by a saga started for a different order."""


class ReturnConflict(Exception):
    """The return id is taken by a saga started for a different return."""


class ActionRefused(Exception):
    """The saga refused the action (the step is not stuck, the saga has ended...)."""


class SagaUnavailable(Exception):
    """The saga did not answer its status query: no orchestrator worker is polling."""


@dataclass(frozen=True)
class SagaFilter:
    """Filters of ``GET /sagas``; every value has been validated by the route."""

    saga_type: SagaType | None = None
    """One type of saga; ``None``: both."""
    status: SearchStatus | None = None
    step: str | None = None
    customer_id: str | None = None
    older_than_seconds: int | None = None
    newer_than_seconds: int | None = None
    running_only: bool = False

    def query(self, now: datetime) -> str:
        """The visibility query that selects these sagas."""
        types = [self.saga_type] if self.saga_type is not None else list(SagaType)
        clauses = [
            "("
            + " OR ".join(f"WorkflowType = '{saga_type.workflow_type}'" for saga_type in types)
            + ")"
        ]
        if self.status is not None:
            clauses.append(f"{SAGA_STATUS_KEY.name} = '{self.status.value}'")
        if self.step is not None:
            clauses.append(f"{SAGA_STEP_KEY.name} = '{self.step}'")
        if self.customer_id is not None:
            clauses.append(f"{CUSTOMER_ID_KEY.name} = '{self.customer_id}'")
        if self.older_than_seconds is not None:
            before = now - timedelta(seconds=self.older_than_seconds)
            clauses.append(f"StartTime < '{before.isoformat()}'")
        if self.newer_than_seconds is not None:
            after = now - timedelta(seconds=self.newer_than_seconds)
            clauses.append(f"StartTime > '{after.isoformat()}'")
        if self.running_only:
            clauses.append("ExecutionStatus = 'Running'")
        return " AND ".join(clauses)


_Status = TypeVar("_Status", bound=SagaStatus)


class SagaService:
    """The orchestrator's sagas, for the API's routes."""

    def __init__(
        self,
        client: Client,
        settings: Settings,
        timeline: Timeline,
        outbox_db: Database,
        outbox: Outbox,
        orders: OrderQueries,
        *,
        definitions: Mapping[SagaType, SagaDefinition] | None = None,
        base_url: str = "",
    ) -> None:
        self._client = client
        self._settings = settings
        self._timeline = timeline
        self._outbox_db = outbox_db
        self._outbox = outbox
        self._orders = orders
        self.definitions: Mapping[SagaType, SagaDefinition] = definitions or {
            SagaType.ORDER: ORDER_SAGA,
            SagaType.RETURN: RETURN_SAGA,
        }
        self._base_url = base_url
        self.ops_log = OperatorLog(outbox_db)
        """The operator log, in the API's database (beside its outbox)."""
        self._rng = Random()

    def step_names(self, saga_type: SagaType | None = None) -> list[str]:
        """The steps of one type of saga, or of both (each name once)."""
        types = [saga_type] if saga_type is not None else list(self.definitions)
        names = (name for kind in types for name in self.definitions[kind].step_names)
        return list(dict.fromkeys(names))

    # --- Starting ----------------------------------------------------------------------

    async def start(self, request: OrderRequest, placed_by: str) -> OrderAccepted:
        """Start the order's saga, or find the one already started for the same order.

        ``placed_by`` (the caller's token name) is kept in the saga's memo, beside the
        request's fingerprint, where the Temporal UI shows it.

        Raises:
            OrderConflict: the order id belongs to a saga of a different order.
        """
        order_id = request.order_id or f"ord-{uuid.uuid4().hex[:16]}"
        workflow_id = saga_workflow_id(order_id)
        digest = request.digest()
        order = request.to_order(order_id)
        created = await self._start_once(
            ORDER_SAGA_WORKFLOW,
            OrderSagaInput(
                order=order,
                dispatch_deadline_seconds=(
                    request.dispatch_deadline_seconds or self._settings.dispatch_deadline_seconds
                ),
            ),
            workflow_id=workflow_id,
            digest=digest,
            placed_by=placed_by,
            search_attributes=start_attributes(order),
            summary=start_summary(order),
        )
        if not created:
            raise OrderConflict(
                f"order {order_id!r} was already placed with a different body; "
                "use a new order_id for a new order"
            )
        return OrderAccepted(
            order_id=order_id,
            workflow_id=workflow_id,
            created=created == "started",
            links=self.links(order_id),
        )

    async def start_return(self, order_id: str, body: ReturnBody, asked_by: str) -> ReturnAccepted:
        """Start the return's saga, or find the one already started for the same return.

        The customer is the order's, from the orders the orchestrator accepted; whether the
        items may come back is the saga's to decide (its first step, ``authorize_return``).
        ``asked_by`` (the caller's token name) is kept in the saga's memo.

        Raises:
            OrderNotFound: no order ``order_id`` was placed here.
            ReturnConflict: the return id belongs to a saga of a different return.
        """
        customer_id = self._orders.customer_of(order_id)
        if customer_id is None:
            raise OrderNotFound(
                f"no order {order_id!r}: a return is of an order placed through this API"
            )
        saga_input = ReturnSagaInput(
            request=body.to_request(order_id),
            customer_id=customer_id,
            window_seconds=self._settings.return_window_days * _DAY_SECONDS,
            deadline_seconds=(
                body.deadline_seconds or self._settings.return_deadline_days * _DAY_SECONDS
            ),
        )
        workflow_id = return_workflow_id(body.return_id)
        created = await self._start_once(
            RETURN_SAGA_WORKFLOW,
            saga_input,
            workflow_id=workflow_id,
            digest=body.digest(order_id),
            placed_by=asked_by,
            search_attributes=return_start_attributes(saga_input),
            summary=return_start_summary(saga_input),
        )
        if not created:
            raise ReturnConflict(
                f"return {body.return_id!r} was already asked for with a different body or "
                "of another order; use a new return_id for a new return"
            )
        return ReturnAccepted(
            return_id=body.return_id,
            order_id=order_id,
            workflow_id=workflow_id,
            created=created == "started",
            links=self.return_links(body.return_id),
        )

    async def _start_once(
        self,
        workflow: str,
        saga_input: OrderSagaInput | ReturnSagaInput,
        *,
        workflow_id: str,
        digest: str,
        placed_by: str,
        search_attributes: TypedSearchAttributes,
        summary: str,
    ) -> str:
        """Start a saga under ``workflow_id`` unless one was started there before, with
        ``summary`` as its static summary in the Temporal Web UI.

        Returns:
            ``started``; ``existing`` when a saga of the same request (``digest``) was
            started before; ``""`` when the id is taken by a saga of another request.
        """
        try:
            await self._client.start_workflow(
                workflow,
                saga_input,
                id=workflow_id,
                task_queue=ORCHESTRATOR,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
                memo={REQUEST_DIGEST_MEMO: digest, PLACED_BY_MEMO: placed_by},
                search_attributes=search_attributes,
                static_summary=summary,
                rpc_timeout=_RPC_TIMEOUT,
            )
        except WorkflowAlreadyStartedError:
            existing = self._client.get_workflow_handle(workflow_id)
            description = await existing.describe(rpc_timeout=_RPC_TIMEOUT)
            memo = await description.memo()
            same = description.workflow_type == workflow and memo.get(REQUEST_DIGEST_MEMO) == digest
            return "existing" if same else ""
        return "started"

    # --- Looking -----------------------------------------------------------------------

    async def view(self, order_id: str) -> SagaView:
        """The saga's status beside the order's events.

        Raises:
            SagaNotFound: no saga for ``order_id``.
        """
        handle = self._handle(order_id)
        description = await self._describe(handle, f"order {order_id!r}")
        status = await self._status(handle, SagaStatus)
        return SagaView(
            order_id=order_id,
            workflow_id=handle.id,
            execution_status=_execution_status(description.status),
            saga=status,
            events=self.events(order_id),
            links=self.links(order_id),
        )

    async def view_return(self, return_id: str) -> ReturnView:
        """The return's saga status beside the return's events.

        Raises:
            SagaNotFound: no saga for ``return_id``.
        """
        handle = self._return_handle(return_id)
        description = await self._describe(handle, f"return {return_id!r}")
        status = await self._status(handle, ReturnStatus)
        return ReturnView(
            return_id=return_id,
            order_id=status.order_id,
            workflow_id=handle.id,
            execution_status=_execution_status(description.status),
            saga=status,
            events=self.return_events(status.order_id, return_id),
            links=self.return_links(return_id),
        )

    def events(self, order_id: str, *, after: int = 0) -> list[EventView]:
        """The order's events after position ``after``, in the order they happened."""
        return [
            EventView(position=position, **asdict(entry))
            for position, entry in self._timeline.events_for(order_id, after_seq=after)
        ]

    def return_events(self, order_id: str, return_id: str, *, after: int = 0) -> list[EventView]:
        """The events of ``order_id`` that name ``return_id``, after position ``after``."""
        return [
            event
            for event in self.events(order_id, after=after)
            if event.data.get("return_id") == return_id
        ]

    async def follow(
        self, order_id: str, *, after: int = 0, poll_seconds: float = 0.2
    ) -> AsyncIterator[EventView]:
        """The order's events as they arrive, until the saga has ended and said so.

        Raises:
            SagaNotFound: no saga for ``order_id`` (before anything is yielded).
        """
        async for event in self._follow(
            self._handle(order_id),
            f"order {order_id!r}",
            lambda position: self.events(order_id, after=position),
            _END_EVENTS,
            after=after,
            poll_seconds=poll_seconds,
        ):
            yield event

    async def follow_return(
        self, return_id: str, *, after: int = 0, poll_seconds: float = 0.2
    ) -> AsyncIterator[EventView]:
        """The return's events as they arrive, until its saga has ended and said so.

        Raises:
            SagaNotFound: no saga for ``return_id`` (before anything is yielded).
        """
        handle = self._return_handle(return_id)
        description = await self._describe(handle, f"return {return_id!r}")
        order_id = description.typed_search_attributes.get(ORDER_ID_KEY) or ""
        async for event in self._follow(
            handle,
            f"return {return_id!r}",
            lambda position: self.return_events(order_id, return_id, after=position),
            _RETURN_END_EVENTS,
            after=after,
            poll_seconds=poll_seconds,
        ):
            yield event

    async def _follow(
        self,
        handle: WorkflowHandle[object, object],
        what: str,
        events: Callable[[int], list[EventView]],
        end_events: frozenset[str],
        *,
        after: int,
        poll_seconds: float,
    ) -> AsyncIterator[EventView]:
        loop = asyncio.get_running_loop()
        ended_at: float | None = None
        # A client resuming after the saga's last event has already seen how it ended.
        closing_seen = any(
            event.event_type in end_events for event in events(0) if event.position <= after
        )
        next_check = 0.0
        while True:
            for event in events(after):
                after = max(after, event.position)  # listed by time, numbered by arrival
                closing_seen = closing_seen or event.event_type in end_events
                yield event
            now = loop.time()
            if ended_at is None and now >= next_check:
                next_check = now + 1.0
                description = await self._describe(handle, what)
                if description.status != WorkflowExecutionStatus.RUNNING:
                    ended_at = now
            # The saga's last event reaches the read model shortly after the saga ends.
            if ended_at is not None and (closing_seen or now - ended_at > 10):
                return
            await asyncio.sleep(poll_seconds)

    async def list_sagas(
        self, filters: SagaFilter, *, page_size: int, page_token: str | None
    ) -> SagaPage:
        """One page of the sagas that match ``filters``, newest first.

        Raises:
            ValueError: ``page_token`` is not one this API gave out.
        """
        token = _decode_token(page_token) if page_token else None
        executions = self._client.list_workflows(
            filters.query(datetime.now(UTC)),
            page_size=page_size,
            next_page_token=token,
            rpc_timeout=_RPC_TIMEOUT,
        )
        await executions.fetch_next_page(page_size=page_size)
        next_token = executions.next_page_token
        return SagaPage(
            sagas=[self._summary(execution) for execution in executions.current_page or []],
            next_page_token=_encode_token(next_token) if next_token else None,
        )

    async def stuck(
        self,
        older_than_seconds: int,
        *,
        step: str | None = None,
        saga_type: SagaType | None = None,
        limit: int = 1000,
    ) -> list[StuckSaga]:
        """Every running saga (of ``saga_type``, or of both types) whose current step has not
        moved for ``older_than_seconds``."""
        now = datetime.now(UTC)
        found: list[WorkflowExecution] = []
        query = SagaFilter(saga_type=saga_type, running_only=True, step=step).query(now)
        async for execution in self._client.list_workflows(query, limit=limit):
            found.append(execution)
        gate = asyncio.Semaphore(_LOOKUPS_AT_ONCE)

        async def look(execution: WorkflowExecution) -> StuckSaga | None:
            async with gate:
                return await self._stuck_one(execution, now, older_than_seconds)

        results = await asyncio.gather(*(look(execution) for execution in found))
        stuck = [saga for saga in results if saga is not None]
        return sorted(stuck, key=lambda saga: saga.since)

    async def _stuck_one(
        self, execution: WorkflowExecution, now: datetime, older_than_seconds: int
    ) -> StuckSaga | None:
        saga_type, saga_id = _saga_of(execution)
        handle = self._client.get_workflow_handle(execution.id)
        try:
            status = await self._status(
                handle, ReturnStatus if saga_type is SagaType.RETURN else SagaStatus
            )
            description = await handle.describe(rpc_timeout=_RPC_TIMEOUT)
        except SagaNotFound:
            return None  # gone between the list and the look
        except SagaUnavailable as exc:
            return self._unanswered(execution, now, older_than_seconds, str(exc))
        if status.current_step is None or status.status not in (
            SagaPhase.RUNNING,
            SagaPhase.COMPENSATING,
        ):
            return None
        state = next(s for s in status.steps if s.name == status.current_step)
        since = state.updated_at or execution.start_time
        if since is None or (now - since).total_seconds() < older_than_seconds:
            return None
        compensating = status.status is SagaPhase.COMPENSATING
        pending = _first_pending(description.raw_description.pending_activities)
        return StuckSaga(
            saga_type=saga_type,
            saga_id=saga_id,
            order_id=status.order_id,
            workflow_id=execution.id,
            saga_status=status.status.value,
            step=status.current_step,
            compensating=compensating,
            owner=self.definitions[saga_type].owner(status.current_step, compensating=compensating),
            since=since,
            stuck_for_seconds=round((now - since).total_seconds(), 1),
            flagged_stuck=state.stuck,
            # A local activity (the orchestrator's own steps) is never pending on the server.
            attempts=(
                pending.attempt
                if pending
                else state.compensation_attempts
                if compensating
                else state.attempts
            ),
            last_failure=(
                pending.last_failure.message
                if pending is not None and pending.HasField("last_failure")
                else (state.compensation_last_error if compensating else state.last_error)
            ),
            parked_since=state.parked_since,
            parked_reason=state.parked_reason,
            incident_id=state.incident_id,
            links=self._links_of(saga_type, saga_id),
        )

    def _unanswered(
        self, execution: WorkflowExecution, now: datetime, older_than_seconds: int, error: str
    ) -> StuckSaga | None:
        """A saga that cannot say where it is: shown from its search attributes."""
        since = execution.start_time
        if since is None or (now - since).total_seconds() < older_than_seconds:
            return None
        attributes = execution.typed_search_attributes
        step = attributes.get(SAGA_STEP_KEY) or "unknown"
        saga_status = attributes.get(SAGA_STATUS_KEY) or "UNKNOWN"
        saga_type, saga_id = _saga_of(execution)
        return StuckSaga(
            saga_type=saga_type,
            saga_id=saga_id,
            order_id=_order_id(execution),
            workflow_id=execution.id,
            saga_status=saga_status,
            step=step,
            compensating=saga_status == SagaPhase.COMPENSATING.value,
            owner=ORCHESTRATOR,
            since=since,
            stuck_for_seconds=round((now - since).total_seconds(), 1),
            flagged_stuck=False,
            attempts=0,
            last_failure=error,
            links=self._links_of(saga_type, saga_id),
        )

    # --- Acting ------------------------------------------------------------------------

    async def cancel(self, order_id: str, request: CancelRequest, principal: str) -> SagaStatus:
        """Ask the saga to cancel the order (refused by the saga after dispatch).

        The saga records ``principal`` (who sent the request) as the one who asked;
        ``request.requested_by`` is what the caller says, kept in the reason. The operator
        log records the request and its outcome: accepted, refused (the saga has ended, or
        its notes say it refused), or the error.

        Raises:
            SagaNotFound: no saga for ``order_id``.
            ActionRefused: the saga has ended.
        """
        reason = _on_behalf(request.reason, request.requested_by, principal)
        handle = self._handle(order_id)

        def entry(outcome: OperatorOutcome, detail: str) -> OperatorRecord:
            return OperatorRecord(
                principal=principal,
                action="cancel",
                reason=reason,
                outcome=outcome,
                detail=detail,
                saga_type=SagaType.ORDER,
                saga_id=order_id,
                order_id=order_id,
                workflow_id=handle.id,
            )

        with self._failures_logged(entry):
            description = await self._describe(handle, f"order {order_id!r}")
            if description.status != WorkflowExecutionStatus.RUNNING:
                raise ActionRefused(f"the saga of order {order_id!r} has ended: nothing to cancel")
            asked = CancelOrderRequest(reason=reason, requested_by=principal)
            await handle.signal(CANCEL_ORDER_SIGNAL, asked, rpc_timeout=_RPC_TIMEOUT)
            status = await self._status(handle, SagaStatus)
        # The saga's own words for what it asked itself (OrderSaga.cancel_order).
        said = f"cancelled by {asked.requested_by}: {asked.reason}"
        refusal = next(
            (
                note.detail
                for note in reversed(status.notes)
                if note.kind in _CANCEL_REFUSALS and note.detail.endswith(said)
            ),
            None,
        )
        where = f" at {status.current_step}" if status.current_step else ""
        self._append(
            entry("refused", refusal)
            if refusal is not None
            else entry("accepted", f"the saga is {status.status.value}{where}")
        )
        return status

    async def repair(
        self,
        saga_id: str,
        request: RepairRequest,
        principal: str,
        *,
        saga_type: SagaType = SagaType.ORDER,
        bulk_id: str | None = None,
    ) -> RepairResult:
        """Retry a stuck step now, or record it as settled by hand; publish what was done.

        ``saga_id`` is the order id of an order's saga, the return id of a return's. The
        saga and the ``order.repaired`` event (on the order's timeline; for a return, its
        detail names the return) name ``principal`` (who sent the request) as the operator;
        ``request.operator`` is what the caller says, kept in the reason. The operator log
        records the repair (in the transaction that adds the event to the outbox), or why
        it was refused, or the error; ``bulk_id`` names the bulk repair it is part of.

        Raises:
            SagaNotFound: no saga for ``saga_id``.
            ActionRefused: the saga refused (the step is unknown or not stuck, or it ended).
        """
        what = f"{saga_type.value} {saga_id!r}"
        handle = self._client.get_workflow_handle(_workflow_id(saga_type, saga_id))
        reason = _on_behalf(request.reason, request.operator, principal)
        order_id = saga_id if saga_type is SagaType.ORDER else None

        def entry(outcome: OperatorOutcome, detail: str) -> OperatorRecord:
            return OperatorRecord(
                principal=principal,
                action=request.action,
                reason=reason,
                outcome=outcome,
                detail=detail,
                saga_type=saga_type,
                saga_id=saga_id,
                order_id=order_id,
                workflow_id=handle.id,
                step=request.step,
                bulk_id=bulk_id,
            )

        with self._failures_logged(entry):
            description = await self._describe(handle, what)
            order_id = description.typed_search_attributes.get(ORDER_ID_KEY) or saga_id
            if description.status != WorkflowExecutionStatus.RUNNING:
                raise ActionRefused(f"the saga of {what} has ended: nothing to repair")
            result = await self._operate(handle, request, principal, reason)
        with transaction(self._outbox_db):
            self._outbox.add(
                OrderRepaired(
                    data=OrderRepairedData(
                        order_id=order_id,
                        action=request.action,
                        step=request.step,
                        operator=principal,
                        reason=reason,
                        detail=(
                            result.detail
                            if saga_type is SagaType.ORDER
                            else f"return {saga_id}: {result.detail}"
                        ),
                    ),
                    correlation_id=order_id,
                    source=_SOURCE,
                )
            )
            self.ops_log.append(entry("accepted", result.detail))
        return RepairResult(
            saga_type=saga_type,
            saga_id=saga_id,
            order_id=order_id,
            action=request.action,
            step=result.step,
            detail=result.detail,
        )

    async def _operate(
        self,
        handle: WorkflowHandle[object, object],
        request: RepairRequest,
        principal: str,
        reason: str,
    ) -> OperatorActionResult:
        """Send the saga its operator update.

        Raises:
            ActionRefused: the saga refused it.
        """
        try:
            if request.action == "retry_now":
                result: OperatorActionResult = await handle.execute_update(
                    RETRY_NOW_UPDATE,
                    RetryNowRequest(step=request.step, operator=principal, reason=reason),
                    result_type=OperatorActionResult,
                    rpc_timeout=_RPC_TIMEOUT,
                )
            else:
                result = await handle.execute_update(
                    RESOLVE_MANUALLY_UPDATE,
                    ResolveManuallyRequest(step=request.step, operator=principal, reason=reason),
                    result_type=OperatorActionResult,
                    rpc_timeout=_RPC_TIMEOUT,
                )
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            raise ActionRefused(str(getattr(cause, "message", None) or cause)) from None
        return result

    async def bulk_repair(self, request: BulkRepairRequest, principal: str) -> BulkRepairReport:
        """Repair every saga stuck on ``request.step`` (of ``request.saga_type``, or of both
        types), at most ``request.limit`` of them: a dry run, or for real, one saga after
        another with a jittered wait between actions (:func:`jittered_waits` at
        ``request.rate_per_second``); each repair is recorded as done by ``principal``.

        Each saga is looked at again just before it is acted on, and is skipped when it was
        already repaired in this stuck episode, by what the saga itself reports: it is no
        longer stuck on the step, the step was resolved by hand, or (for ``retry_now``) its
        notes hold a retry-now of the step asked since the step last failed (its new round
        is still running). So running the same bulk repair twice acts on nothing the second
        time; once that round has failed, the step is in a new episode and can be retried
        again. The operator log records each repair and then the bulk repair itself, with
        its selection and every saga's outcome.
        """
        bulk_id = uuid.uuid4().hex
        selection = BulkSelection.model_validate(request, from_attributes=True)
        reason = _on_behalf(request.reason, request.operator, principal)

        def entry(
            outcome: OperatorOutcome, detail: str, items: list[BulkRepairItem] | None = None
        ) -> OperatorRecord:
            return OperatorRecord(
                principal=principal,
                action="bulk_repair",
                reason=reason,
                outcome=outcome,
                detail=detail,
                saga_type=request.saga_type,
                step=request.step,
                bulk_id=bulk_id,
                selection=selection,
                items=items,
            )

        with self._failures_logged(entry):
            stuck = [
                saga
                for saga in await self.stuck(
                    request.older_than_seconds, step=request.step, saga_type=request.saga_type
                )
                if saga.step == request.step
            ][: request.limit]
            items: list[BulkRepairItem] = []
            waits = jittered_waits(request.rate_per_second, self._rng)
            acted = False
            for saga in stuck:
                outcome, detail = await self._bulk_outcome(saga, request)
                if outcome == "would-repair" and not request.dry_run:
                    if acted:
                        await asyncio.sleep(next(waits))
                    acted = True
                    outcome, detail = await self._bulk_repair_one(saga, request, principal, bulk_id)
                items.append(
                    BulkRepairItem(
                        saga_type=saga.saga_type,
                        saga_id=saga.saga_id,
                        order_id=saga.order_id,
                        step=saga.step,
                        outcome=outcome,
                        detail=detail,
                    )
                )
        counts = {
            outcome: sum(item.outcome == outcome for item in items)
            for outcome in ("would-repair", "repaired", "skipped", "refused", "error")
        }
        summary = ", ".join(f"{count} {outcome}" for outcome, count in counts.items() if count)
        self._append(
            entry(
                "accepted",
                f"{'dry run' if request.dry_run else request.action}: {len(stuck)} matched"
                + (f": {summary}" if summary else ""),
                items,
            )
        )
        return BulkRepairReport(
            dry_run=request.dry_run,
            action=request.action,
            step=request.step,
            matched=len(stuck),
            items=items,
            bulk_id=bulk_id,
        )

    async def _bulk_outcome(
        self, saga: StuckSaga, request: BulkRepairRequest
    ) -> tuple[BulkOutcome, str]:
        """Whether a bulk repair should act on ``saga`` now, by what it reports now:
        ``would-repair``, else ``skipped`` (repaired in this episode, or moved on),
        ``refused`` (not flagged stuck), or ``error`` (it does not answer)."""
        try:
            status = await self._status(
                self._client.get_workflow_handle(saga.workflow_id),
                ReturnStatus if saga.saga_type is SagaType.RETURN else SagaStatus,
            )
        except SagaNotFound as exc:
            return "skipped", str(exc)
        except SagaUnavailable as exc:
            return "error", str(exc)
        if status.current_step != saga.step or status.status not in (
            SagaPhase.RUNNING,
            SagaPhase.COMPENSATING,
        ):
            where = f" at {status.current_step}" if status.current_step else ""
            return "skipped", f"no longer stuck on {saga.step}: {status.status.value}{where}"
        state = next(s for s in status.steps if s.name == saga.step)
        if state.resolution is not None:
            resolution = state.resolution
            return "skipped", (
                f"already resolved manually by {resolution.operator} at "
                f"{resolution.at:%Y-%m-%d %H:%M:%S}Z: {resolution.reason}"
            )
        if not state.stuck:
            return "refused", "not flagged stuck by the saga yet: its retries are still running"
        if request.action == "retry_now":
            since = state.updated_at
            asked = [
                note
                for note in status.notes
                if note.kind == "retry-now"
                and note.detail.startswith(f"{saga.step}: ")
                and (since is None or note.at >= since)
            ]
            if asked:
                return "skipped", (
                    f"already retried in this stuck episode ({asked[-1].detail}, at "
                    f"{asked[-1].at:%H:%M:%S}Z): its round has not failed since"
                )
        return "would-repair", (
            f"{request.action} {saga.step} ({saga.owner}, stuck {saga.stuck_for_seconds:.0f} s)"
        )

    async def _bulk_repair_one(
        self, saga: StuckSaga, request: BulkRepairRequest, principal: str, bulk_id: str
    ) -> tuple[BulkOutcome, str]:
        try:
            result = await self.repair(
                saga.saga_id,
                RepairRequest.model_validate(request, from_attributes=True),
                principal,
                saga_type=saga.saga_type,
                bulk_id=bulk_id,
            )
        except (ActionRefused, SagaNotFound) as exc:
            return "refused", str(exc)
        except (SagaUnavailable, RPCError) as exc:
            return "error", str(exc)
        return "repaired", result.detail

    def operator_log(
        self,
        *,
        order_id: str | None = None,
        saga_type: SagaType | None = None,
        since_seconds: int | None = None,
        page_size: int = 50,
        page_token: str | None = None,
    ) -> OperatorLogPage:
        """One page of the operator log, newest first.

        Raises:
            ValueError: ``page_token`` is not one this API gave out.
        """
        before = None
        if page_token is not None:
            if not page_token.isdigit() or len(page_token) > 18:
                raise ValueError("page_token is not one this API gave out")
            before = int(page_token)
        since = (
            datetime.now(UTC) - timedelta(seconds=since_seconds)
            if since_seconds is not None
            else None
        )
        return self.ops_log.page(
            order_id=order_id,
            saga_type=saga_type,
            since=since,
            page_size=page_size,
            before=before,
        )

    def _append(self, record: OperatorRecord) -> None:
        with transaction(self._outbox_db):
            self.ops_log.append(record)

    @contextlib.contextmanager
    def _failures_logged(
        self, entry: Callable[[OperatorOutcome, str], OperatorRecord]
    ) -> Iterator[None]:
        """Log an action that raised, as refused (the saga or the API said no) or as an
        error (anything else), and let the exception go on."""
        try:
            yield
        except (ActionRefused, SagaNotFound) as exc:
            self._append(entry("refused", str(exc)))
            raise
        except Exception as exc:
            self._append(entry("error", f"{type(exc).__name__}: {exc}"))
            raise

    # --- Helpers -----------------------------------------------------------------------

    def links(self, order_id: str) -> SagaLinks:
        """Where to look at the saga of ``order_id``."""
        return self._links_of(SagaType.ORDER, order_id)

    def return_links(self, return_id: str) -> SagaLinks:
        """Where to look at the saga of ``return_id``."""
        return self._links_of(SagaType.RETURN, return_id)

    def _links_of(self, saga_type: SagaType, saga_id: str) -> SagaLinks:
        namespace = self._settings.temporal_namespace
        workflow_id = _workflow_id(saga_type, saga_id)
        resource = "sagas" if saga_type is SagaType.ORDER else "returns"
        return SagaLinks(
            saga=f"{self._base_url}/{resource}/{saga_id}",
            events=f"{self._base_url}/{resource}/{saga_id}/events",
            web_ui=f"{self._settings.temporal_ui_url}/namespaces/{namespace}/workflows/{workflow_id}",
        )

    async def describe(self, order_id: str) -> WorkflowExecutionDescription:
        """Temporal's description of the saga of ``order_id``.

        Raises:
            SagaNotFound: no saga for ``order_id``.
        """
        return await self._describe(self._handle(order_id), f"order {order_id!r}")

    async def describe_return(self, return_id: str) -> WorkflowExecutionDescription:
        """Temporal's description of the saga of ``return_id``.

        Raises:
            SagaNotFound: no saga for ``return_id``.
        """
        return await self._describe(self._return_handle(return_id), f"return {return_id!r}")

    def _handle(self, order_id: str) -> WorkflowHandle[object, object]:
        return self._client.get_workflow_handle(saga_workflow_id(order_id))

    def _return_handle(self, return_id: str) -> WorkflowHandle[object, object]:
        return self._client.get_workflow_handle(return_workflow_id(return_id))

    async def _describe(
        self, handle: WorkflowHandle[object, object], what: str
    ) -> WorkflowExecutionDescription:
        try:
            return await handle.describe(rpc_timeout=_RPC_TIMEOUT)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise SagaNotFound(f"no saga for {what}") from None
            raise

    async def _status(self, handle: WorkflowHandle[object, object], kind: type[_Status]) -> _Status:
        try:
            status: _Status = await handle.query(
                STATUS_QUERY, result_type=kind, rpc_timeout=_RPC_TIMEOUT
            )
        except WorkflowQueryFailedError as exc:
            raise SagaUnavailable(
                f"the saga {handle.id!r} failed its status query: {exc}"
            ) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise SagaNotFound(f"no saga {handle.id!r}") from None
            if exc.status == RPCStatusCode.FAILED_PRECONDITION:
                # Its workflow task fails (a workflow type no worker has, nondeterminism):
                # stuck in the worker, not in a step.
                raise SagaUnavailable(
                    f"the saga {handle.id!r} cannot answer its status query: {exc.message} "
                    "(its workflow task's failure: the Web UI, `saga logs orchestrator`)"
                ) from None
            # Our own deadline passing surfaces as CANCELLED ("Timeout expired") from the
            # SDK's core: a saga no worker answers for (the orchestrator worker is down).
            if exc.status in _NO_ANSWER:
                raise SagaUnavailable(
                    f"the saga {handle.id!r} did not answer its status query within "
                    f"{_RPC_TIMEOUT.total_seconds():.0f} s: is the orchestrator worker running? "
                    "(`saga ps`)"
                ) from None
            raise
        return status

    def _summary(self, execution: WorkflowExecution) -> SagaSummary:
        attributes = execution.typed_search_attributes
        saga_type, saga_id = _saga_of(execution)
        return SagaSummary(
            saga_type=saga_type,
            saga_id=saga_id,
            order_id=_order_id(execution),
            workflow_id=execution.id,
            customer_id=attributes.get(CUSTOMER_ID_KEY),
            saga_status=attributes.get(SAGA_STATUS_KEY),
            saga_step=attributes.get(SAGA_STEP_KEY),
            execution_status=_execution_status(execution.status),
            started_at=execution.start_time,
            closed_at=execution.close_time,
            links=self._links_of(saga_type, saga_id),
        )


def _workflow_id(saga_type: SagaType, saga_id: str) -> str:
    return saga_workflow_id(saga_id) if saga_type is SagaType.ORDER else return_workflow_id(saga_id)


def _saga_of(execution: WorkflowExecution) -> tuple[SagaType, str]:
    """The type of a listed saga and its id (order id, or return id)."""
    if execution.workflow_type == RETURN_SAGA_WORKFLOW:
        return SagaType.RETURN, execution.id.removeprefix(return_workflow_id(""))
    return SagaType.ORDER, _order_id(execution)


def _on_behalf(reason: str, named: str, principal: str) -> str:
    """``reason``, with who the request names as acting when that is not its principal: the
    principal (the token) is who acted; the name in the body is only what the caller says."""
    return reason if named == principal else f"{reason} (on behalf of {named})"


def _order_id(execution: WorkflowExecution) -> str:
    order_id = execution.typed_search_attributes.get(ORDER_ID_KEY)
    return order_id if order_id else execution.id.removeprefix("order-")


def _execution_status(status: WorkflowExecutionStatus | None) -> str:
    return status.name if status is not None else "UNKNOWN"


def _first_pending(pending: Sequence[PendingActivityInfo]) -> PendingActivityInfo | None:
    """The pending activity that matters most: a started one before a scheduled one."""
    ranked = sorted(
        pending,
        key=lambda info: info.state != PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
    )
    return ranked[0] if ranked else None


def _token_check(raw: bytes) -> bytes:
    return hashlib.blake2b(raw, digest_size=8, person=b"saga-page").digest()


def _encode_token(raw: bytes) -> str:
    """Temporal's page token, with a check that only this API's tokens pass."""
    return base64.urlsafe_b64encode(_token_check(raw) + raw).decode()


def _decode_token(token: str) -> bytes:
    try:
        decoded = base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError):
        decoded = b""
    check, raw = decoded[:8], decoded[8:]
    if not raw or check != _token_check(raw):
        raise ValueError("page_token is not one this API gave out")
    return raw
