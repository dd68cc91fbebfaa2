"""Log set-up shared by every process: JSON lines for machines, plain lines for people.

Every line carries ``timestamp``, ``level``, ``process``, ``logger`` and ``message``; the
fields a caller passes with ``extra=`` (``eventId``, ``eventType``, ``topic``,
``correlationId``, ``consumerGroup``, ``processingTime``, ``orderId``...) follow. A line
logged inside an activity of an order's saga gets that ``orderId``, and a line logged inside
a trace gets ``traceId`` and ``spanId``, so logs and traces of one order can be joined.

No line shows a customer's personal data: the values of fields named like a payment token,
a name, an address line, a city, a postal code, an email or a phone number, in ``extra=``
fields, in the arguments of the message (dicts and pydantic models, an ``Order`` say) or
written as ``key=value`` into its text, come out as ``[redacted]``.
"""

import logging
import re
import sys
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

from opentelemetry import trace
from pydantic import BaseModel
from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter
from temporalio import activity
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from contracts.activities import saga_workflow_id

__all__ = [
    "REDACTED",
    "LogFormat",
    "configure_logging",
    "log_handler",
    "temporal_core_logging",
]

LogFormat = Literal["auto", "json", "text"]

_SAGA_PREFIX = saga_workflow_id("")
# Record attributes that are not fields of the line: the standard ones, and the Temporal
# core's raw entry (its message is the line's message already).
_RESERVED = frozenset(RESERVED_ATTRS) | {"message", "asctime", "taskName", "temporal_log"}

REDACTED = "[redacted]"
# Field names of personal data, compared without case, "_" and "-" (postal_code, postalCode).
_PERSONAL_FIELDS = frozenset(
    {
        "paymenttoken", "token", "cardnumber",
        "name", "fullname", "firstname", "lastname",
        "address", "shippingaddress", "billingaddress", "street",
        "line1", "line2", "addressline1", "addressline2", "city", "postalcode", "zip", "zipcode",
        "email", "phone", "phonenumber",
    }
)  # fmt: skip
# ``payment_token='tok_visa'``, ``"postal_code": "10115"``, ``line1=Hauptstr. 1`` in a text.
_PERSONAL_TEXT = re.compile(
    r"""(?P<key>\b(?:payment_?token|line[12]|postal_?code|email|phone)\b['"]?\s*[:=]\s*)"""
    r"""(?:'[^']*'|"[^"]*"|[^\s,;)}\]]+)""",
    re.IGNORECASE,
)


def configure_logging(
    process: str, *, log_format: LogFormat = "auto", level: str | int = logging.INFO
) -> None:
    """Send every log record of this process to stderr, in ``log_format``.

    Args:
        process: The process's name on every line (``payment-service``).
        log_format: ``json``, ``text``, or ``auto``: text when stderr is a terminal.
        level: The lowest level logged.
    """
    logging.basicConfig(
        level=level, handlers=[log_handler(process, log_format, sys.stderr)], force=True
    )
    logging.captureWarnings(True)
    # Clients made without a runtime of their own use the default one; its core must log
    # through the handler above rather than straight to stderr in its own format.
    Runtime.set_default(
        Runtime(telemetry=TelemetryConfig(logging=temporal_core_logging())),
        error_if_already_set=False,
    )


def log_handler(process: str, log_format: LogFormat, stream: TextIO) -> logging.Handler:
    """A handler writing lines of ``process`` to ``stream``: JSON, text, or ``auto``: text
    when ``stream`` is a terminal."""
    if log_format == "auto":
        log_format = "text" if stream.isatty() else "json"
    handler = logging.StreamHandler(stream)
    handler.addFilter(_PersonalDataFilter())
    handler.setFormatter(
        _JsonLineFormatter(process) if log_format == "json" else _TextLineFormatter(process)
    )
    return handler


def temporal_core_logging(core_level: str = "WARN") -> LoggingConfig:
    """The logging of Temporal's core (Rust): warnings and errors, through Python logging.

    A process that builds its own :class:`temporalio.runtime.Runtime` passes this as the
    ``logging`` of its ``TelemetryConfig``, so the core's lines are formatted like the rest.
    ``core_level`` ``ERROR`` quiets the retries that a client expects (a chaos run).
    """
    return LoggingConfig(
        filter=TelemetryFilter(core_level=core_level, other_level="ERROR"),
        forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
    )


def _timestamp(record: logging.LogRecord) -> str:
    """``2025-01-31T10:59:44.625Z`` (UTC); a third cheaper than going through datetime."""
    created = record.created
    return (
        f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(created))}.{int(created % 1 * 1000):03d}Z"
    )


def _context_fields(record: logging.LogRecord) -> dict[str, Any]:
    """The order and the trace the record was logged in, where the caller did not say."""
    fields: dict[str, Any] = {}
    if "orderId" not in record.__dict__:
        order_id = _order_of_running_activity()
        if order_id is not None:
            fields["orderId"] = order_id
    context = trace.get_current_span().get_span_context()
    if context.is_valid and "traceId" not in record.__dict__:
        fields["traceId"] = format(context.trace_id, "032x")
        fields["spanId"] = format(context.span_id, "016x")
    return fields


def _order_of_running_activity() -> str | None:
    if not activity.in_activity():
        return None
    workflow_id = activity.info().workflow_id
    if workflow_id is None or not workflow_id.startswith(_SAGA_PREFIX):
        return None
    return workflow_id.removeprefix(_SAGA_PREFIX)


class _JsonLineFormatter(JsonFormatter):
    """One JSON object a line: the fixed fields first, then the caller's."""

    def __init__(self, process: str) -> None:
        super().__init__(["message"], reserved_attrs=sorted(_RESERVED))
        self._process = process

    def add_fields(
        self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
    ) -> None:
        log_data["timestamp"] = _timestamp(record)
        log_data["level"] = record.levelname
        log_data["process"] = self._process
        log_data["logger"] = record.name
        super().add_fields(log_data, record, message_dict)
        log_data.update(_context_fields(record))


class _TextLineFormatter(logging.Formatter):
    """``12:00:00.125 INFO  payment-service runtime._outbox: Event published topic=...``."""

    def __init__(self, process: str) -> None:
        super().__init__(f"%(asctime)s %(levelname)-7s {process} %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return datetime.fromtimestamp(record.created, UTC).astimezone().strftime("%H:%M:%S.%f")[:-3]

    def formatMessage(self, record: logging.LogRecord) -> str:
        fields = {
            key: value for key, value in record.__dict__.items() if key not in _RESERVED
        } | _context_fields(record)
        fields.pop("spanId", None)
        line = super().formatMessage(record)
        return line + "".join(f" {key}={value}" for key, value in fields.items())


def _personal(key: object) -> bool:
    return str(key).replace("_", "").replace("-", "").lower() in _PERSONAL_FIELDS


def _redacted(value: Any, personal: bool = False) -> Any:
    """``value`` with the values of personal fields, at any depth, as ``[redacted]``."""
    if isinstance(value, BaseModel):
        value = value.model_dump(mode="json")
    if isinstance(value, Mapping):
        return {key: _redacted(item, _personal(key)) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redacted(item, personal) for item in value]
    if personal and value is not None:
        return REDACTED
    if isinstance(value, str):
        return _PERSONAL_TEXT.sub(rf"\g<key>{REDACTED}", value)
    return value


def _redacted_argument(value: Any) -> Any:
    """A message argument as it may be shown: itself unless it carries personal data."""
    if not isinstance(value, BaseModel | Mapping | list | tuple):
        return value
    redacted = _redacted(value)
    plain = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    if isinstance(plain, tuple):
        plain = list(plain)
    return value if redacted == plain else redacted


class _PersonalDataFilter(logging.Filter):
    """Redacts personal data in a record before any formatter sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = record.__dict__
        for key in [key for key in fields if key not in _RESERVED]:
            fields[key] = _redacted(fields[key], _personal(key))
        if isinstance(record.args, tuple):
            record.args = tuple(_redacted_argument(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = _redacted(record.args)
        if isinstance(record.msg, str):
            try:
                message = record.getMessage()
            except (TypeError, ValueError):
                return True  # arguments that do not fit: the handler reports that line
            shown = _PERSONAL_TEXT.sub(rf"\g<key>{REDACTED}", message)
            if shown != message:
                record.msg, record.args = shown, None
        return True
