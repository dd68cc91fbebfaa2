"""Orders that keep coming while parts of the stack die: the chaos run's load.

Each of ``concurrency`` clients places its next order, waits for that saga's end, and goes
on, like a shop's checkout. A client does what a well-behaved caller of the API does when
the API or Temporal is down: it tries again with the same order id (``POST /orders`` is
idempotent, so a retry after a lost answer is answered 200 with the saga that exists), and
it waits for the saga through Temporal's long poll, reconnecting when the server is gone.

An order counts as accepted once the API answered 200 or 202 for it. The mix has orders
that complete and orders that are undone on purpose (a declined card, a country the
carrier does not serve), so that compensations run under faults too.
"""

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from temporalio.client import Client, WorkflowFailureError
from temporalio.service import RPCError

from contracts.activities import OrderSagaResult
from infra.config.settings import Settings, api_headers
from ops.bench.load import BENCH_SKUS, Progress
from orchestrator.api.models import Address, OrderAccepted, OrderItem, OrderRequest

__all__ = ["ChaosLoad", "chaos_order"]

_RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


def chaos_order(run_id: str, index: int, prefix: str = "chaos") -> OrderRequest:
    """Order ``index`` of a run: one in ten declined, one in ten to an unserved country."""
    token, country = "tok_visa", "DE"
    if index % 10 == 3:
        token = "tok_chargeDeclined"
    elif index % 10 == 7:
        country = "AQ"
    return OrderRequest(
        order_id=f"{prefix}-{run_id}-{index:06d}",  # as ChaosLoad books it
        customer_id=f"{prefix}-{run_id}",
        items=[OrderItem(sku=BENCH_SKUS[index % len(BENCH_SKUS)], quantity=1, unit_price=1999)],
        currency="EUR",
        payment_token=token,
        shipping_address=Address(country=country),
    )


@dataclass
class ChaosLoad:
    """The run's orders: placed through the API and followed to their saga's end."""

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

    async def run(self) -> None:
        """Place every order and wait for its saga, ``concurrency`` at a time."""
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

            await asyncio.gather(*(client() for _ in range(min(self.concurrency, self.count))))

    @property
    def finished(self) -> int:
        """Sagas seen to end so far."""
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

    async def _one(self, http: httpx.AsyncClient, index: int) -> None:
        order = chaos_order(self.run_id, index, self.order_prefix)
        order_id = f"{self.order_prefix}-{self.run_id}-{index:06d}"
        workflow_id = await self._place(http, order)
        if workflow_id is None:
            return
        self.accepted[order_id] = workflow_id
        status = await self._wait(workflow_id)
        if status is not None:
            self.outcomes[order_id] = status
            self.finish_times.append(time.monotonic())
            self.progress(self.finished, self.count)

    async def _place(self, http: httpx.AsyncClient, order: OrderRequest) -> str | None:
        body = order.model_dump(mode="json", exclude_none=True)
        backoff = 0.25
        tries = 0
        while time.monotonic() < self.deadline:
            tries += 1
            if tries > 1:
                self.api_retries += 1
            try:
                response = await http.post("/orders", json=body)
            except httpx.HTTPError:
                response = None
            if response is not None and response.status_code in (200, 202):
                accepted = OrderAccepted.model_validate_json(response.content)
                if tries > 1 and not accepted.created:
                    self.answered_existing += 1
                return accepted.workflow_id
            if response is not None and response.status_code not in _RETRY_STATUSES:
                self.refused[f"HTTP {response.status_code}"] += 1
                return None
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 2.0)
        self.refused["not accepted before the deadline"] += 1
        return None

    async def _wait(self, workflow_id: str) -> str | None:
        handle = self.temporal.get_workflow_handle(workflow_id, result_type=OrderSagaResult)
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
            return str(result.status.value)
        return None
