"""What the orchestrator API takes and answers: the HTTP contract, shared with `saga`'s CLI."""

import hashlib
import json
import unicodedata
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import pycountry
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from contracts.activities import (
    LOST_PARCEL_REASON,
    ORDER_SAGA_WORKFLOW,
    RETURN_SAGA_WORKFLOW,
    Order,
    ReturnOutcome,
    ReturnRequest,
    ReturnStatus,
    SagaPhase,
    SagaStatus,
    ShippingAddress,
)
from contracts.events.common import OrderLine, StockLine
from orchestrator.workflows.order_saga import ORDER_SAGA
from orchestrator.workflows.return_saga import RETURN_SAGA

__all__ = [
    "BulkOutcome",
    "BulkRepairItem",
    "BulkRepairReport",
    "BulkRepairRequest",
    "BulkSelection",
    "CancelRequest",
    "EventView",
    "OperatorAction",
    "OperatorLogEntry",
    "OperatorLogPage",
    "OperatorOutcome",
    "OrderAccepted",
    "OrderRequest",
    "ProblemDetail",
    "RepairAction",
    "RepairRequest",
    "RepairResult",
    "ReturnAccepted",
    "ReturnBody",
    "ReturnItem",
    "ReturnView",
    "SagaLinks",
    "SagaPage",
    "SagaSummary",
    "SagaType",
    "SagaView",
    "SearchStatus",
    "StuckSaga",
]

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
]
"""An order, customer or SKU id: ASCII letters, digits and ``._@:-``, at most 64 characters.

Ids end up in workflow ids, URLs, Kafka keys and log lines: nothing else (no spaces, no
look-alike letters, no invisible characters) is safe in all of them.
"""

# Explicit embeddings, overrides and isolates: text that displays in another order than it
# is stored ("Trojan Source"). Marks (U+200E, U+200F) and joiners (U+200C, U+200D: emoji
# sequences, Persian) stay allowed.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters (NUL, line feed, escape...), lone surrogates (JSON's "\ud800": no
# character at all, and no UTF-8 either), line and paragraph separators.
_REFUSED_CATEGORIES = {
    "Cc": "a control character",
    "Cs": "a lone surrogate",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


def _printable(text: str) -> str:
    """``text``, if it is one line of printable text in any script (emoji too)."""
    for position, char in enumerate(text):
        category = unicodedata.category(char)
        if category in _REFUSED_CATEGORIES or char in _BIDI_CONTROLS:
            what = _REFUSED_CATEGORIES.get(category, "a bidirectional override")
            raise ValueError(
                f"U+{ord(char):04X} ({what}) at position {position}: only printable text "
                "on one line is taken here"
            )
    return text


Text = Annotated[str, StringConstraints(min_length=1, max_length=500), AfterValidator(_printable)]
"""A reason: 1 to 500 characters of printable text."""

RepairAction = Literal["retry_now", "resolve_manually"]

CURRENCY_CODES = sorted(currency.alpha_3 for currency in pycountry.currencies)
"""ISO 4217, as pycountry knows it: what ``currency`` accepts."""
STEP_NAMES = list(dict.fromkeys([*ORDER_SAGA.step_names, *RETURN_SAGA.step_names]))
"""The order saga's steps and the return saga's: what ``step`` accepts."""


class SagaType(StrEnum):
    """The orchestrator's two sagas, as ``type`` filters them and each row names them."""

    ORDER = "order"
    RETURN = "return"

    @property
    def workflow_type(self) -> str:
        """The saga's workflow type in Temporal (``WorkflowType`` in visibility queries)."""
        return ORDER_SAGA_WORKFLOW if self is SagaType.ORDER else RETURN_SAGA_WORKFLOW


class SearchStatus(StrEnum):
    """What the ``SagaStatus`` search attribute holds: the saga's phase, or the outcome an
    undone saga ended with (``REJECTED`` and ``EXPIRED`` are a return's)."""

    RUNNING = SagaPhase.RUNNING.value
    COMPENSATING = SagaPhase.COMPENSATING.value
    COMPLETED = SagaPhase.COMPLETED.value
    CANCELLED = SagaPhase.CANCELLED.value
    REJECTED = ReturnOutcome.REJECTED.value
    EXPIRED = ReturnOutcome.EXPIRED.value


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class OrderItem(_Body):
    """One line of the order."""

    sku: Identifier
    quantity: int = Field(gt=0, le=10_000)
    unit_price: int = Field(gt=0, le=100_000_000, description="In minor units (cents).")


class Address(_Body):
    """Where the order goes; the country decides whether it can be shipped."""

    country: str = Field(pattern=r"^[A-Z]{2}$", description="ISO 3166-1 alpha-2, e.g. DE.")
    name: str | None = Field(default=None, max_length=200)
    line1: str | None = Field(default=None, max_length=200)
    city: str | None = Field(default=None, max_length=100)
    postal_code: str | None = Field(default=None, max_length=20)

    @field_validator("name", "line1", "city", "postal_code")
    @classmethod
    def _printable_text(cls, text: str | None) -> str | None:
        return None if text is None else _printable(text)


class OrderRequest(_Body):
    """``POST /orders``: an order to run through the saga."""

    order_id: Identifier | None = Field(
        default=None, description="Your id for the order; generated when absent."
    )
    customer_id: Identifier
    items: list[OrderItem] = Field(min_length=1, max_length=100)
    currency: str = Field(
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 code, e.g. EUR.",
        json_schema_extra={"enum": CURRENCY_CODES},
    )
    payment_token: Identifier = Field(description="tok_visa, tok_chargeDeclined, tok_flaky...")
    shipping_address: Address
    dispatch_deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=30 * 24 * 3600,
        description="How long the carrier has to dispatch once the shipment is scheduled; "
        "default: the service's SAGA_DISPATCH_DEADLINE_SECONDS (48 hours).",
    )

    @field_validator("currency")
    @classmethod
    def _known_currency(cls, code: str) -> str:
        if pycountry.currencies.get(alpha_3=code) is None:
            raise ValueError(f"{code} is not an ISO 4217 currency code")
        return code

    def digest(self) -> str:
        """A fingerprint of what was ordered (the id aside), to recognise a repeated request."""
        return hashlib.sha256(self.model_dump_json(exclude={"order_id"}).encode()).hexdigest()

    def to_order(self, order_id: str) -> Order:
        """The saga's view of this order."""
        return Order(
            order_id=order_id,
            customer_id=self.customer_id,
            items=[
                OrderLine(sku=item.sku, quantity=item.quantity, unit_price_minor=item.unit_price)
                for item in self.items
            ],
            currency=self.currency,
            payment_token=self.payment_token,
            shipping_address=ShippingAddress(**self.shipping_address.model_dump()),
        )


class ReturnItem(_Body):
    """One line of a return: a SKU of the order and how many of it come back."""

    sku: Identifier
    quantity: int = Field(gt=0, le=10_000)


class ReturnBody(_Body):
    """``POST /orders/{order_id}/returns``: items of the order that the customer sends back.

    Whether they may come back (the order dispatched, within the return window, no more than
    was bought minus earlier returns) is the saga's first step to decide, not the API's.
    """

    return_id: Identifier = Field(
        description="Your id for the return: the same id again is the same return."
    )
    items: list[ReturnItem] = Field(min_length=1, max_length=100)
    reason: Text | None = Field(
        default=None,
        description=f"The customer's words; `{LOST_PARCEL_REASON}` makes the simulated "
        "carrier lose the parcel (the return then expires).",
    )
    deadline_seconds: int | None = Field(
        default=None,
        ge=1,
        le=90 * 24 * 3600,
        description="How long the parcel has to reach the warehouse once the label is "
        "issued; default: the service's SAGA_RETURN_DEADLINE_DAYS (14 days).",
    )

    @field_validator("items")
    @classmethod
    def _one_line_per_sku(cls, items: list[ReturnItem]) -> list[ReturnItem]:
        seen: set[str] = set()
        for item in items:
            if item.sku in seen:
                raise ValueError(f"{item.sku} is listed twice: give each SKU one line")
            seen.add(item.sku)
        return items

    def digest(self, order_id: str) -> str:
        """A fingerprint of the return (which order, which items, why), to recognise a
        repeated request."""
        body = json.dumps({"order_id": order_id, **self.model_dump(mode="json")}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()

    def to_request(self, order_id: str) -> ReturnRequest:
        """The saga's view of this return."""
        return ReturnRequest(
            return_id=self.return_id,
            order_id=order_id,
            items=[StockLine(sku=item.sku, quantity=item.quantity) for item in self.items],
            reason=self.reason or "",
        )


class SagaLinks(BaseModel):
    """Where to look at a saga."""

    saga: str = Field(description="This API's saga resource.")
    events: str = Field(description="The saga's live event stream (Server-Sent Events).")
    web_ui: str = Field(description="The saga in the Temporal Web UI.")


class OrderAccepted(BaseModel):
    """The saga of the order: just started (202), or the one already running for it (200)."""

    order_id: str
    workflow_id: str
    created: bool = Field(description="False when the same order had already been placed.")
    links: SagaLinks


class ReturnAccepted(BaseModel):
    """The saga of the return: just started (202), or the one already started for it (200)."""

    return_id: str
    order_id: str
    workflow_id: str
    created: bool = Field(description="False when the same return had already been asked for.")
    links: SagaLinks


class EventView(BaseModel):
    """One domain event of the order, as the services published it."""

    position: int = Field(description="Position in the read model; SSE's event id.")
    event_id: str
    event_type: str
    source: str
    timestamp: datetime
    causation_id: str | None
    data: dict[str, Any]


class SagaView(BaseModel):
    """``GET /sagas/{order_id}``: where the saga is, beside what the services said."""

    order_id: str
    workflow_id: str
    execution_status: str = Field(description="Temporal's: RUNNING, COMPLETED, FAILED...")
    saga: SagaStatus
    events: list[EventView]
    links: SagaLinks


class ReturnView(BaseModel):
    """``GET /returns/{return_id}``: where the return's saga is, beside the return's events
    (the events of its order that name this return)."""

    return_id: str
    order_id: str
    workflow_id: str
    execution_status: str = Field(description="Temporal's: RUNNING, COMPLETED, FAILED...")
    saga: ReturnStatus
    events: list[EventView]
    links: SagaLinks


class SagaSummary(BaseModel):
    """One saga in a list, from Temporal's visibility store."""

    saga_type: SagaType
    saga_id: str = Field(description="The order id of an order's saga, a return's return id.")
    order_id: str = Field(description="The order (for a return: the order it returns from).")
    workflow_id: str
    customer_id: str | None
    saga_status: str | None
    saga_step: str | None
    execution_status: str
    started_at: datetime | None
    closed_at: datetime | None
    links: SagaLinks


class SagaPage(BaseModel):
    """A page of sagas; pass ``next_page_token`` back for the next one."""

    sagas: list[SagaSummary]
    next_page_token: str | None


class StuckSaga(BaseModel):
    """A running saga whose current step (or compensation) has not moved for a while."""

    saga_type: SagaType
    saga_id: str = Field(description="The order id of an order's saga, a return's return id.")
    order_id: str
    workflow_id: str
    saga_status: str
    step: str
    compensating: bool
    owner: str | None = Field(description="The service that runs the step (its task queue).")
    since: datetime
    stuck_for_seconds: float
    flagged_stuck: bool = Field(
        description="The saga itself flags the step stuck (a round of retries ran out); "
        "only then can it be repaired."
    )
    attempts: int = Field(description="Attempts of the pending activity (0: none started).")
    last_failure: str | None
    parked_since: datetime | None = Field(
        default=None,
        description="Set while the step is parked: its failed attempts reached its policy's "
        "limit, and none is made until a repair (or the policy's park_for passes).",
    )
    parked_reason: str | None = Field(default=None, description="Why it was parked.")
    incident_id: str | None = Field(
        default=None, description="The incident the saga opened for this stuck episode."
    )
    links: SagaLinks


class CancelRequest(_Body):
    """``POST /sagas/{order_id}/cancel``: the customer (or support) cancels before dispatch."""

    reason: Text
    requested_by: Identifier


class RepairRequest(_Body):
    """``POST /sagas/{order_id}/repair`` (or ``/returns/{return_id}/repair``): move a stuck
    step or compensation on.

    ``retry_now`` tries it again at once instead of after its backoff (its service is back);
    ``resolve_manually`` records that a person settled it by hand, and the saga goes on.
    """

    action: RepairAction
    step: Identifier = Field(json_schema_extra={"enum": [*STEP_NAMES]})
    operator: Identifier = Field(description="Who does it.")
    reason: Text = Field(description="Why.")


class RepairResult(BaseModel):
    """What the saga answered to a repair."""

    saga_type: SagaType
    saga_id: str
    order_id: str
    action: RepairAction
    step: str
    detail: str


class BulkRepairRequest(_Body):
    """``POST /sagas/stuck/repair``: one repair for every saga stuck on ``step``.

    A dry run (the default) only lists what would be done; a real run acts on at most
    ``limit`` sagas, ``rate_per_second`` at a time, so a recovering service is not flooded.
    """

    action: RepairAction
    step: Identifier = Field(json_schema_extra={"enum": [*STEP_NAMES]})
    older_than_seconds: int = Field(ge=0, le=30 * 24 * 3600)
    saga_type: SagaType | None = Field(default=None, description="Only sagas of this type.")
    operator: Identifier
    reason: Text
    dry_run: bool = True
    rate_per_second: float = Field(default=2.0, gt=0, le=50)
    limit: int = Field(default=100, ge=1, le=1000)


BulkOutcome = Literal["would-repair", "repaired", "skipped", "refused", "error"]


class BulkRepairItem(BaseModel):
    """One saga of a bulk repair."""

    saga_type: SagaType
    saga_id: str
    order_id: str
    step: str
    outcome: BulkOutcome
    """``skipped``: already repaired in this stuck episode (see ``bulk_repair``), or no
    longer stuck on the step; nothing was asked of the saga."""
    detail: str


class BulkRepairReport(BaseModel):
    """What a bulk repair did (or, dry, would do)."""

    dry_run: bool
    action: RepairAction
    step: str
    matched: int
    items: list[BulkRepairItem]
    bulk_id: str | None = Field(
        default=None, description="Its entries in the operator log (GET /ops-log) carry it."
    )


OperatorAction = Literal["cancel", "retry_now", "resolve_manually", "bulk_repair"]
OperatorOutcome = Literal["accepted", "refused", "error"]


class BulkSelection(BaseModel):
    """What a bulk repair selected and how it ran, as the operator log keeps it."""

    action: RepairAction
    step: str
    saga_type: SagaType | None
    older_than_seconds: int
    limit: int
    rate_per_second: float
    dry_run: bool


class OperatorLogEntry(BaseModel):
    """One operator action, as the operator log keeps it (for good: the log is append-only).

    A bulk repair is one entry (``bulk_repair``, its ``selection`` and every saga's
    ``items``) after one entry per saga it acted on, each naming the bulk's ``bulk_id``.
    """

    seq: int = Field(description="Its place in the log: later entries have higher numbers.")
    at: datetime
    principal: str = Field(description="Who acted: the name of the API token.")
    action: OperatorAction
    saga_type: SagaType | None = None
    saga_id: str | None = None
    order_id: str | None = None
    workflow_id: str | None = None
    step: str | None = None
    reason: str = Field(description="Why, as the operator said (and on whose behalf).")
    outcome: OperatorOutcome
    detail: str = Field(description="The saga's answer, why it was refused, or the error.")
    bulk_id: str | None = Field(
        default=None, description="The bulk repair this action was part of."
    )
    selection: BulkSelection | None = None
    items: list[BulkRepairItem] | None = None


class OperatorLogPage(BaseModel):
    """One page of the operator log, newest first."""

    entries: list[OperatorLogEntry]
    next_page_token: str | None = Field(
        default=None, description="Pass as page_token for the next (older) page; none: the end."
    )


class ProblemDetail(BaseModel):
    """An error: what is wrong, and for validation errors, where."""

    detail: str
