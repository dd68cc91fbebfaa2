"""Orders that keep coming while parts of the stack die: the chaos run's load.

Each of ``concurrency`` clients places its next order, waits for that saga's end, and goes
on, like a shop's checkout. A client does what a well-behaved caller of the API does when
the API or Temporal is down: it tries again with the same order id (``POST /orders`` is
idempotent, so a retry after a lost answer is answered 200 with the saga that exists), and
it waits for the saga through Temporal's long poll, reconnecting when the server is gone.

An order counts as accepted once the API answered 200 or 202 for it. The mix has orders
that complete and orders that are undone on purpose (a declined card, a country the
carrier does not serve), so that compensations run under faults too.

A share of the orders meant to complete are bought twice over and get a return once their
saga completed (``POST /orders/{order_id}/returns``, tried again like an order), started
beside the client's next order so that returns run while the faults strike. Most take one
of the two units back and complete (restocked, refunded); some lose their parcel
(``LOST_PARCEL_REASON``, a deadline of a few seconds) and expire; a few ask for more than
was bought and are rejected. Each return's outcome is known from how it was made.
"""

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import httpx
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from contracts.activities import (
    LOST_PARCEL_REASON,
    OrderSagaResult,
    ReturnOutcome,
    ReturnSagaResult,
)
from contracts.envelope import event_name
from contracts.events import (
    InventoryRestocked,
    PaymentRefundedV2,
    ReturnAuthorized,
    ReturnCompleted,
    ReturnExpired,
    ReturnRejected,
    ShippingReturnLabelIssued,
    ShippingReturnLabelVoided,
    ShippingReturnReceived,
)
from infra.config.settings import Settings, api_headers
from ops.bench.load import BENCH_SKUS, Progress
from orchestrator.api.models import (
    Address,
    OrderAccepted,
    OrderItem,
    OrderRequest,
    ReturnAccepted,
    ReturnBody,
    ReturnItem,
    ReturnView,
)

__all__ = [
    "EXPIRING_RETURN_DEADLINE_S",
    "RETURN_EVENTS",
    "ChaosLoad",
    "ChaosReturn",
    "ReturnSeen",
    "chaos_order",
    "chaos_return",
    "check_returns",
]

_Result = TypeVar("_Result")
_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_DECLINED, _UNSERVED = 3, 7
"""The places, in each ten orders, of the one declined and the one to an unserved country."""
_BOUGHT_FOR_RETURN = 2
"""Units an order that gets a return buys: the return takes one back, or asks for three."""
EXPIRING_RETURN_DEADLINE_S = 5
"""The deadline of a return whose parcel is lost: short, so that it expires within the run."""

RETURN_EVENTS: dict[ReturnOutcome, tuple[str, ...]] = {
    outcome: tuple(event_name(event.EVENT_TYPE) for event in events)
    for outcome, events in {
        ReturnOutcome.COMPLETED: (
            ReturnAuthorized,
            ShippingReturnLabelIssued,
            ShippingReturnReceived,
            InventoryRestocked,
            PaymentRefundedV2,
            ReturnCompleted,
        ),
        ReturnOutcome.EXPIRED: (
            ReturnAuthorized,
            ShippingReturnLabelIssued,
            ShippingReturnLabelVoided,
            ReturnExpired,
        ),
        ReturnOutcome.REJECTED: (ReturnRejected,),
    }.items()
}
"""The events naming a return, each once, by how it ended (their names, without version)."""


@dataclass(frozen=True)
class ChaosReturn:
    """A return of the run, and how it must end."""

    order_id: str
    body: ReturnBody
    expected: ReturnOutcome
    """COMPLETED, EXPIRED (its parcel is lost) or REJECTED (more than was bought)."""


def _completing_rank(index: int) -> int | None:
    """Order ``index``'s place among the run's orders meant to complete (None: it is meant to
    be undone)."""
    place = index % 10
    if place in (_DECLINED, _UNSERVED):
        return None
    return index // 10 * 8 + sum(1 for p in range(place) if p not in (_DECLINED, _UNSERVED))


def chaos_return(
    run_id: str, index: int, share: float, prefix: str = "chaos"
) -> ChaosReturn | None:
    """The return of order ``index``, if it gets one: ``share`` of the orders meant to complete
    do, spread evenly. Of each ten returns, seven take one unit back (COMPLETED), two lose
    their parcel (EXPIRED) and one asks for more than was bought (REJECTED)."""
    rank = _completing_rank(index)
    if rank is None or share <= 0:
        return None
    nth = math.floor((rank + 1) * share)
    if nth == math.floor(rank * share):
        return None
    order_id = f"{prefix}-{run_id}-{index:06d}"
    sku = BENCH_SKUS[index % len(BENCH_SKUS)]
    kind = (nth - 1) % 10
    fields: dict[str, Any] = {}
    quantity, expected = 1, ReturnOutcome.COMPLETED
    if kind in (2, 7):
        expected = ReturnOutcome.EXPIRED
        fields = {"reason": LOST_PARCEL_REASON, "deadline_seconds": EXPIRING_RETURN_DEADLINE_S}
    elif kind == 4:
        quantity, expected = _BOUGHT_FOR_RETURN + 1, ReturnOutcome.REJECTED
    body = ReturnBody(
        return_id=f"{order_id}-r", items=[ReturnItem(sku=sku, quantity=quantity)], **fields
    )
    return ChaosReturn(order_id=order_id, body=body, expected=expected)


def chaos_order(
    run_id: str, index: int, prefix: str = "chaos", returns: float = 0.0
) -> OrderRequest:
    """Order ``index`` of a run: one in ten declined, one in ten to an unserved country; one
    that gets a return (``returns``: the share, :func:`chaos_return`) buys two units."""
    token, country = "tok_visa", "DE"
    if index % 10 == _DECLINED:
        token = "tok_chargeDeclined"
    elif index % 10 == _UNSERVED:
        country = "AQ"
    returned = chaos_return(run_id, index, returns, prefix) is not None
    return OrderRequest(
        order_id=f"{prefix}-{run_id}-{index:06d}",  # as ChaosLoad books it
        customer_id=f"{prefix}-{run_id}",
        items=[
            OrderItem(
                sku=BENCH_SKUS[index % len(BENCH_SKUS)],
                quantity=_BOUGHT_FOR_RETURN if returned else 1,
                unit_price=1999,
            )
        ],
        currency="EUR",
        payment_token=token,
        shipping_address=Address(country=country),
    )


@dataclass
class ChaosLoad:
    """The run's orders and returns: placed through the API and followed to their saga's end."""

    settings: Settings
    """Where the API is, and the token its requests carry (``api_headers``)."""
    temporal: Client
    run_id: str
    count: int
    concurrency: int
    deadline: float
    """Monotonic time after which clients stop waiting (what is not final then is lost)."""
    progress: Progress
    order_prefix: str = "chaos"
    returns: float = 0.0
    """The share of the orders meant to complete that get a return (:func:`chaos_return`)."""

    accepted: dict[str, str] = field(default_factory=dict)
    """Order id → workflow id, for every order the API accepted."""
    outcomes: dict[str, str] = field(default_factory=dict)
    """Order id → COMPLETED, CANCELLED or FAILED, for the sagas seen to end."""
    finish_times: list[float] = field(default_factory=list)
    """Monotonic times at which sagas were seen to end, in order."""
    api_retries: int = 0
    """Order placements sent again after an error or no answer."""
    answered_existing: int = 0
    """Retries the API answered with the saga an earlier, lost, try had started (200)."""
    refused: Counter[str] = field(default_factory=Counter)
    """Orders the API refused for good, by status (a 4xx other than a retryable one)."""
    wait_reconnects: int = 0
    """Times a client's wait for a saga lost Temporal and started again."""

    returns_asked: dict[str, ChaosReturn] = field(default_factory=dict)
    """Return id → the return, for every return asked for (its order completed)."""
    returns_accepted: set[str] = field(default_factory=set)
    """Return ids the API accepted."""
    return_outcomes: dict[str, str] = field(default_factory=dict)
    """Return id → COMPLETED, EXPIRED, REJECTED, CANCELLED or FAILED, for the sagas seen to end."""
    return_times: dict[str, tuple[float, float]] = field(default_factory=dict)
    """Return id → monotonic times it was asked for and seen to end."""
    returns_not_asked: int = 0
    """Orders that were to get a return but did not complete (their return was not asked)."""
    returns_refused: Counter[str] = field(default_factory=Counter)
    """Returns the API refused for good, by status."""
    return_retries: int = 0
    """Return requests sent again after an error or no answer."""
    returns_answered_existing: int = 0
    """Return retries the API answered with the saga an earlier, lost, try had started."""
    _returning: set["asyncio.Task[None]"] = field(default_factory=set)

    async def run(self) -> None:
        """Place every order and wait for its saga, ``concurrency`` at a time; then wait for
        the returns started meanwhile."""
        indexes = iter(range(self.count))
        limits = httpx.Limits(
            max_connections=self.concurrency, max_keepalive_connections=self.concurrency
        )
        async with httpx.AsyncClient(
            base_url=self.settings.api_url,
            timeout=30.0,
            limits=limits,
            headers=api_headers(self.settings),
        ) as http:

            async def client() -> None:
                for index in indexes:  # shared: each client takes the next order
                    await self._one(http, index)

            try:
                await asyncio.gather(*(client() for _ in range(min(self.concurrency, self.count))))
                await asyncio.gather(*self._returning)
            finally:
                for task in self._returning:
                    task.cancel()

    @property
    def finished(self) -> int:
        """Order sagas seen to end so far."""
        return len(self.finish_times)

    def ended(self, status: str) -> int:
        """Sagas seen to end with ``status`` (COMPLETED, CANCELLED or FAILED)."""
        return sum(1 for outcome in self.outcomes.values() if outcome == status)

    def lost_orders(self) -> list[str]:
        """Accepted orders whose saga was not seen to complete or cancel: still running at the
        deadline, FAILED, or gone."""
        return sorted(
            order
            for order in self.accepted
            if self.outcomes.get(order) not in ("COMPLETED", "CANCELLED")
        )

    def returns_ended(self, outcome: ReturnOutcome) -> int:
        """Return sagas seen to end with ``outcome``."""
        return sum(1 for seen in self.return_outcomes.values() if seen == outcome.value)

    def lost_returns(self) -> list[str]:
        """Accepted returns whose saga was not seen to end: still running at the deadline, or
        gone."""
        return sorted(set(self.returns_accepted) - set(self.return_outcomes))

    def returns_otherwise(self) -> dict[str, str]:
        """Return id → "expected X, ended Y" for each return whose saga ended otherwise than
        the way it was made says."""
        return {
            return_id: f"expected {self.returns_asked[return_id].expected}, ended {seen}"
            for return_id, seen in sorted(self.return_outcomes.items())
            if seen != self.returns_asked[return_id].expected.value
        }

    async def _one(self, http: httpx.AsyncClient, index: int) -> None:
        order = chaos_order(self.run_id, index, self.order_prefix, self.returns)
        order_id = f"{self.order_prefix}-{self.run_id}-{index:06d}"
        placed = await self._post(http, "/orders", order, OrderAccepted, "order")
        if placed is None:
            return
        self.accepted[order_id] = placed
        status = await self._wait(placed, OrderSagaResult, lambda r: r.status.value)
        if status is not None:
            self.outcomes[order_id] = status
            self.finish_times.append(time.monotonic())
            self.progress(self.finished, self.count)
        returned = chaos_return(self.run_id, index, self.returns, self.order_prefix)
        if returned is None:
            return
        if status != "COMPLETED":
            self.returns_not_asked += 1  # a fault undid it: there is nothing to send back
            return
        # Beside the client's next order, so that the orders keep their pace.
        task = asyncio.create_task(self._return(http, returned), name=returned.body.return_id)
        self._returning.add(task)

    async def _return(self, http: httpx.AsyncClient, returned: ChaosReturn) -> None:
        return_id = returned.body.return_id
        self.returns_asked[return_id] = returned
        asked = time.monotonic()
        path = f"/orders/{returned.order_id}/returns"
        placed = await self._post(http, path, returned.body, ReturnAccepted, "return")
        if placed is None:
            return
        self.returns_accepted.add(return_id)
        outcome = await self._wait(placed, ReturnSagaResult, lambda r: r.outcome.value)
        if outcome is not None:
            self.return_outcomes[return_id] = outcome
            self.return_times[return_id] = (asked, time.monotonic())

    async def _post(
        self,
        http: httpx.AsyncClient,
        path: str,
        request: OrderRequest | ReturnBody,
        answer: type[OrderAccepted] | type[ReturnAccepted],
        kind: Literal["order", "return"],
    ) -> str | None:
        """POST ``request`` until the API accepts it (its saga's workflow id) or refuses it
        for good (None)."""
        body = request.model_dump(mode="json", exclude_none=True)
        order = kind == "order"
        refused = self.refused if order else self.returns_refused
        backoff = 0.25
        tries = 0
        while time.monotonic() < self.deadline:
            tries += 1
            if tries > 1 and order:
                self.api_retries += 1
            elif tries > 1:
                self.return_retries += 1
            try:
                response = await http.post(path, json=body)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code in (200, 202):
                accepted = answer.model_validate_json(response.content)
                if tries > 1 and not accepted.created and order:
                    self.answered_existing += 1
                elif tries > 1 and not accepted.created:
                    self.returns_answered_existing += 1
                return accepted.workflow_id
            if response is not None and response.status_code not in _RETRY_STATUSES:
                refused[f"HTTP {response.status_code}"] += 1
                return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        refused["not accepted before the deadline"] += 1
        return None

    async def _wait(
        self, workflow_id: str, result_type: type[_Result], status_of: Callable[[_Result], str]
    ) -> str | None:
        """How the saga of ``workflow_id`` ended (``status_of`` its result, or FAILED); None if
        it had not by the run's deadline."""
        handle = self.temporal.get_workflow_handle(workflow_id, result_type=result_type)
        while time.monotonic() < self.deadline:
            try:
                result = await asyncio.wait_for(
                    handle.result(), timeout=max(self.deadline - time.monotonic(), 0.1)
                )
            except WorkflowFailureError:
                return "FAILED"
            except (RPCError, RuntimeError):
                self.wait_reconnects += 1  # Temporal is down or restarting: wait for it
                await asyncio.sleep(1.0)
                continue
            except TimeoutError:
                return None
            return status_of(result)
        return None


@dataclass(frozen=True)
class ReturnSeen:
    """A return as ``GET /returns/{return_id}`` shows it at the end of the run."""

    return_id: str
    outcome: str | None
    """The saga's outcome (None: the API did not answer for it)."""
    events: list[str]
    """The names (without version) of the events that name the return, in order."""

    def problem(self, expected: ReturnOutcome) -> str | None:
        """What is wrong with the return, made to end ``expected``; None if nothing."""
        if self.outcome is None:
            return f"return {self.return_id}: GET /returns/{self.return_id} did not answer"
        if self.outcome != expected.value:
            return f"return {self.return_id}: expected {expected}, the API says {self.outcome}"
        wanted, seen = Counter(RETURN_EVENTS[expected]), Counter(self.events)
        if seen == wanted:
            return None
        missing, extra = sorted((wanted - seen).elements()), sorted((seen - wanted).elements())
        return (
            f"return {self.return_id} ({expected}): events missing {missing or '-'}, "
            f"more than once or unexpected {extra or '-'}"
        )


async def check_returns(
    settings: Settings, returns: dict[str, ChaosReturn], *, wait_s: float = 60.0
) -> dict[str, ReturnSeen]:
    """Each of ``returns`` as ``GET /returns/{return_id}`` shows it, once its view has the
    events its expected end implies (the projector may still be catching up), or as it is
    after ``wait_s``."""
    deadline = time.monotonic() + wait_s
    seen: dict[str, ReturnSeen] = {}
    async with httpx.AsyncClient(
        base_url=settings.api_url, timeout=10.0, headers=api_headers(settings)
    ) as http:

        async def look(return_id: str) -> ReturnSeen:
            response = await http.get(f"/returns/{return_id}")
            if response.status_code != 200:
                return ReturnSeen(return_id, None, [])
            view = ReturnView.model_validate_json(response.content)
            names = [event_name(event.event_type) for event in view.events]
            return ReturnSeen(return_id, view.saga.outcome.value, names)

        pending = sorted(returns)
        while pending:
            for return_id in pending:
                try:
                    seen[return_id] = await look(return_id)
                except httpx.HTTPError:
                    seen[return_id] = ReturnSeen(return_id, None, [])
            pending = [
                return_id
                for return_id in pending
                if seen[return_id].problem(returns[return_id].expected) is not None
            ]
            if pending and time.monotonic() < deadline:
                await asyncio.sleep(0.5)
            else:
                break
    return seen
