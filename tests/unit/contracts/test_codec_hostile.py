"""Whatever a record holds, decoding it raises nothing but ``UndecodableEvent``.

A consumer dead-letters a record on that error and goes on; any other exception would stop
its loop. Hypothesis feeds the codec random bytes, and valid events with bytes flipped, cut
or appended, under valid, missing and garbled headers.
"""

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from contracts import EVENT_TYPES, UndecodableEvent, UndecodableReason, decode_event, encode_event
from tests.support.samples import sample_events

SAMPLES = {event_type: encode_event(event) for event_type, event in sample_events().items()}

_header_values = st.one_of(
    st.none(),
    st.binary(max_size=40),
    st.sampled_from([b"application/avro", b"payment.completed.v1", b"\xff\xfe", b""]),
)
_headers = st.lists(
    st.tuples(
        st.sampled_from(["event_type", "schema_fingerprint", "content_type", "traceparent"]),
        _header_values,
    ),
    max_size=6,
)


def _decode_or_refuse(value: bytes | None, headers: Any) -> None:
    try:
        decode_event(value, headers)
    except UndecodableEvent as refused:
        assert refused.reason in set(UndecodableReason)


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(value=st.one_of(st.none(), st.binary(max_size=300)), headers=_headers)
def test_random_bytes_and_headers_are_refused_as_undecodable(
    value: bytes | None, headers: list[tuple[str, bytes | None]]
) -> None:
    """Random values under random headers: decoded, or refused with a reason."""
    _decode_or_refuse(value, headers)


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    event_type=st.sampled_from(EVENT_TYPES),
    position=st.integers(min_value=0),
    byte=st.integers(min_value=0, max_value=255),
    tail=st.binary(max_size=8),
    cut=st.integers(min_value=0, max_value=16),
)
def test_damaged_events_under_their_own_headers_are_refused_as_undecodable(
    event_type: str, position: int, byte: int, tail: bytes, cut: int
) -> None:
    """A real event with one byte changed, some bytes cut off or appended: each is refused
    with a reason (or, where the change happens to stay valid, decoded)."""
    encoded = SAMPLES[event_type]
    value = bytearray(encoded.value)
    value[position % len(value)] = byte
    damaged = bytes(value[: len(value) - cut]) + tail
    _decode_or_refuse(damaged, encoded.headers)


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([("event_type", None)], UndecodableReason.GARBLED_HEADER),
        ([("event_type", b"\xff\xfepayment")], UndecodableReason.GARBLED_HEADER),
        ([("content_type", b"application/json")], UndecodableReason.UNSUPPORTED_CONTENT_TYPE),
        ([("schema_fingerprint", b"f" * 100_000)], UndecodableReason.UNKNOWN_FINGERPRINT),
    ],
)
def test_garbled_headers_are_named_in_a_short_message(
    headers: list[tuple[str, bytes | None]], reason: UndecodableReason
) -> None:
    """A header without bytes, with bytes that are not ASCII or with 100 kB of them is
    refused, and the message quotes at most the start of it."""
    encoded = SAMPLES["payment.completed.v1"]
    replaced = dict(headers)
    mixed = [(name, replaced.get(name, raw)) for name, raw in encoded.headers]
    with pytest.raises(UndecodableEvent) as refused:
        decode_event(encoded.value, mixed)
    assert refused.value.reason == reason
    assert len(str(refused.value)) < 400


def test_a_value_that_is_not_bytes_is_an_empty_value() -> None:
    """A tombstone (None) is no event."""
    encoded = SAMPLES["payment.completed.v1"]
    with pytest.raises(UndecodableEvent) as refused:
        decode_event(None, encoded.headers)
    assert refused.value.reason == UndecodableReason.EMPTY_VALUE
