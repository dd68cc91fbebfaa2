"""The envelope every domain event travels in, generic over the event's data.

Each event type is a subclass naming its data model and its ``EVENT_TYPE`` (its
``EVENT_VERSION`` is ``N.0.0`` for type ``.vN`` unless it says otherwise); building one
needs only ``data``, ``correlation_id``, ``source`` and, when there is one, ``causation_id``:

    PaymentCompleted(data=..., correlation_id=order_id, source="payment-service")

``timestamp`` is carried in Avro as a ``long`` with the ``timestamp-millis`` logical type
(milliseconds since the Unix epoch, UTC): it is compact, sorts as a number and fastavro
maps it to an aware ``datetime``. The model therefore keeps timestamps in UTC at
millisecond precision, so an event compares equal to itself after a round trip.
"""

import re
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Generic, Self, TypeAlias, TypeVar
from uuid import UUID, uuid4

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "AnyEvent",
    "CountryCode",
    "CurrencyCode",
    "DataModel",
    "Event",
    "EventData",
    "event_name",
    "event_version_number",
    "utc_now",
]

CurrencyCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO 4217 currency code: three upper-case letters (``EUR``)."""

CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
"""An ISO 3166-1 alpha-2 country code: two upper-case letters (``DE``)."""

_SEMVER = re.compile(r"\d+\.\d+\.\d+")
_EVENT_TYPE = re.compile(r"[a-z]+\.[a-z_]+\.v[1-9]\d*")


def utc_now() -> datetime:
    """The current UTC time at the millisecond precision Avro keeps."""
    return _to_avro_precision(datetime.now(UTC))


def _to_avro_precision(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def event_name(event_type: str) -> str:
    """The event type without its version (``order.placed.v2`` -> ``order.placed``)."""
    return event_type.rpartition(".")[0]


def event_version_number(event_type: str) -> int:
    """The major version of an event type (``order.placed.v2`` -> 2)."""
    return int(event_type.rpartition(".v")[2])


class EventData(BaseModel):
    """Base of every event's data record: immutable, and strict about unknown fields."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    order_id: str = Field(min_length=1)


DataModel = TypeVar("DataModel", bound=EventData)


class Event(BaseModel, Generic[DataModel]):
    """The envelope: who emitted what, when, for which order and because of what."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    EVENT_TYPE: ClassVar[str]
    """``{domain}.{action}.v{N}``; the name of the schema file that describes this event."""
    EVENT_VERSION: ClassVar[str]
    """The semantic version of that schema; its major part is the ``N`` of ``EVENT_TYPE``.

    ``N.0.0`` unless the class declares it: only a schema changed within its major version
    (``1.1.0``) needs to say so.
    """

    event_id: UUID = Field(default_factory=uuid4)
    # Empty means "this class's own", filled in by the validators below, so that
    # callers never spell the type or version out.
    event_type: str = Field(default="", validate_default=True)
    event_version: str = Field(default="", validate_default=True)
    timestamp: datetime = Field(default_factory=utc_now)
    source: str = Field(min_length=1)
    correlation_id: str = Field(min_length=1)
    causation_id: str | None = None
    data: DataModel

    @field_validator("event_type")
    @classmethod
    def _is_this_event_type(cls, value: str) -> str:
        if value and value != cls.EVENT_TYPE:
            raise ValueError(f"{cls.__name__} carries {cls.EVENT_TYPE!r}, not {value!r}")
        return cls.EVENT_TYPE

    @field_validator("event_version")
    @classmethod
    def _is_this_event_version(cls, value: str) -> str:
        if value and value != cls.EVENT_VERSION:
            raise ValueError(f"{cls.__name__} is version {cls.EVENT_VERSION}, not {value!r}")
        return cls.EVENT_VERSION

    @field_validator("timestamp")
    @classmethod
    def _is_utc_millis(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("timestamp must be timezone-aware")
        return _to_avro_precision(value)

    @model_validator(mode="after")
    def _correlates_with_its_order(self) -> Self:
        # Every event here belongs to an order saga; the order id is what ties
        # the saga's events together and what keys them onto one partition.
        if self.correlation_id != self.data.order_id:
            raise ValueError(
                f"correlation_id {self.correlation_id!r} is not the order id "
                f"{self.data.order_id!r} of the data"
            )
        return self

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        """Check a concrete event's type and version are well formed when it is declared."""
        super().__pydantic_init_subclass__(**kwargs)
        if "EVENT_TYPE" not in cls.__dict__:
            return  # a parametrisation such as Event[OrderPlacedData], not an event type
        if not _EVENT_TYPE.fullmatch(cls.EVENT_TYPE):
            raise TypeError(
                f"{cls.__name__}: {cls.EVENT_TYPE!r} is not {{domain}}.{{action}}.v{{N}}"
            )
        if "EVENT_VERSION" not in cls.__dict__:
            cls.EVENT_VERSION = f"{event_version_number(cls.EVENT_TYPE)}.0.0"
        major = cls.EVENT_VERSION.partition(".")[0]
        if not _SEMVER.fullmatch(cls.EVENT_VERSION) or int(major) != event_version_number(
            cls.EVENT_TYPE
        ):
            raise TypeError(
                f"{cls.__name__}: version {cls.EVENT_VERSION!r} does not match {cls.EVENT_TYPE}"
            )


AnyEvent: TypeAlias = Event[Any]
"""Any event of the catalog, whatever its data."""
