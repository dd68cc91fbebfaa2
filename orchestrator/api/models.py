"""What the orchestrator API takes and answers: the HTTP contract, shared with `saga`'s CLI."""

import hashlib
import unicodedata
from datetime import datetime
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

from contracts.activities import Order, SagaStatus, ShippingAddress
from contracts.events.common import OrderLine
from orchestrator.workflows.order_saga import ORDER_SAGA

__all__ = [
    "BulkRepairItem",
    "BulkRepairReport",
    "BulkRepairRequest",
    "CancelRequest",
    "EventView",
    "OrderAccepted",
    "OrderRequest",
    "ProblemDetail",
    "RepairAction",
    "RepairRequest",
    "RepairResult",
    "SagaLinks",
    "SagaPage",
    "SagaSummary",
    "SagaView",
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
STEP_NAMES = ORDER_SAGA.step_names
"""The order saga's steps: what ``step`` accepts."""


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


class SagaSummary(BaseModel):
    """One saga in a list, from Temporal's visibility store."""

    order_id: str
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
    links: SagaLinks


class CancelRequest(_Body):
    """``POST /sagas/{order_id}/cancel``: the customer (or support) cancels before dispatch."""

    reason: Text
    requested_by: Identifier


class RepairRequest(_Body):
    """``POST /sagas/{order_id}/repair``: move a stuck step or compensation on.

    ``retry_now`` tries it again at once instead of after its backoff (its service is back);
    ``resolve_manually`` records that a person settled it by hand, and the saga goes on.
    """

    action: RepairAction
    step: Identifier = Field(json_schema_extra={"enum": [*STEP_NAMES]})
    operator: Identifier = Field(description="Who does it.")
    reason: Text = Field(description="Why.")


class RepairResult(BaseModel):
    """What the saga answered to a repair."""

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
    operator: Identifier
    reason: Text
    dry_run: bool = True
    rate_per_second: float = Field(default=2.0, gt=0, le=50)
    limit: int = Field(default=100, ge=1, le=1000)


class BulkRepairItem(BaseModel):
    """One saga of a bulk repair."""

    order_id: str
    step: str
    outcome: Literal["would-repair", "repaired", "refused"]
    detail: str


class BulkRepairReport(BaseModel):
    """What a bulk repair did (or, dry, would do)."""

    dry_run: bool
    action: RepairAction
    step: str
    matched: int
    items: list[BulkRepairItem]


class ProblemDetail(BaseModel):
    """An error: what is wrong, and for validation errors, where."""

    detail: str
