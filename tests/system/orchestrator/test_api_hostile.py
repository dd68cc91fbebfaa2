"""The running API under hostile input: each request gets a 4xx that names the field (or the
body) and the reason, quickly, in the API's error format, and none starts a saga.

The error format is FastAPI's: ``{"detail": "..."}``, and for validation errors (422)
``{"detail": [{"loc": [...], "msg": "...", "input": ..., "type": "..."}]}``.
"""

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from infra.config.settings import Settings
from tests.support.orders_api import order_body

# Every order a test here sends belongs to this customer, so that no saga of it may exist.
CUSTOMER = f"hostile-{uuid.uuid4().hex[:8]}"
MAX_BODY = Settings.model_fields["api_max_body_bytes"].default


def _order(**changes: Any) -> dict[str, Any]:
    """A valid order of ``CUSTOMER`` (a fresh order id), with ``changes`` applied."""
    body = order_body(prefix=CUSTOMER, customer_id=CUSTOMER, sku="SKU-1001", unit_price=1250)
    body.update(changes)
    return body


async def _post(api: httpx.AsyncClient, url: str, body: Any) -> httpx.Response:
    """POST ``body`` as JSON: UTF-8 text, or with ``\\uXXXX`` escapes where it holds lone
    surrogates (no UTF-8 holds them; JSON text can)."""
    try:
        content = json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        content = json.dumps(body).encode()
    return await api.post(url, content=content, headers={"content-type": "application/json"})


def _detail(response: httpx.Response, status: int) -> Any:
    """The ``detail`` of a refusal with ``status``, in the API's JSON error format."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"] == "application/json"
    detail = response.json()["detail"]
    assert detail
    return detail


def _problems(response: httpx.Response) -> dict[tuple[Any, ...], str]:
    """A 422's problems: field location -> message."""
    detail = _detail(response, 422)
    assert len(response.content) < 20_000, "a refusal echoes only a short part of the input"
    return {tuple(problem["loc"]): problem["msg"] for problem in detail}


async def _no_saga(api: httpx.AsyncClient, *order_ids: str) -> None:
    for order_id in order_ids:
        answer = await api.get(f"/sagas/{order_id}")
        assert answer.status_code in (404, 422), (order_id, answer.text)


async def test_a_body_over_the_limit_is_refused_before_it_is_read(
    api: httpx.AsyncClient,
) -> None:
    """413 naming the limit and its setting: declared by Content-Length (2 MB) or streamed
    in chunks without one. A body just within the limit is read and validated (422)."""
    order = _order()
    padded = json.dumps({**order, "padding": "x" * 2_000_000}).encode()
    started = time.monotonic()
    answer = await api.post("/orders", content=padded, headers={"content-type": "application/json"})
    detail = _detail(answer, 413)
    assert f"at most {MAX_BODY} bytes" in detail
    assert "SAGA_API_MAX_BODY_BYTES" in detail
    assert time.monotonic() - started < 5

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"padding": "'
        for _ in range(100):
            yield b"x" * 10_000
        yield b'"}'

    streamed = await api.post(
        "/orders", content=chunks(), headers={"content-type": "application/json"}
    )
    assert "transfer-encoding" in streamed.request.headers
    assert f"more than {MAX_BODY} bytes" in _detail(streamed, 413)

    within = {**order, "padding": "x" * (MAX_BODY - 1000)}
    assert _problems(await api.post("/orders", json=within)) == {
        ("body", "padding"): "Extra inputs are not permitted"
    }
    await _no_saga(api, order["order_id"])


@pytest.mark.parametrize(
    "body",
    [b"{", b'{"order_id": }', b"{'order_id': 'single quotes'}", b'{"a": 1,}', b"nul\x00l"],
    ids=["unclosed", "no-value", "single-quotes", "trailing-comma", "nul-byte"],
)
async def test_malformed_json_is_a_422_with_the_position_and_the_reason(
    api: httpx.AsyncClient, body: bytes
) -> None:
    """FastAPI's ``json_invalid``, its message saying what the parser expected, and where."""
    detail = _detail(
        await api.post("/orders", content=body, headers={"content-type": "application/json"}),
        422,
    )
    assert [problem["type"] for problem in detail] == ["json_invalid"]
    assert detail[0]["loc"][0] == "body"
    assert detail[0]["msg"].startswith("the body is not valid JSON: ")
    assert "at character" in detail[0]["msg"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
        (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "nested too deeply"),
        (b'{"customer_id": "caf\xe9"}', "not UTF-8 text: byte 0xe9 at position 20"),
        (b'{"items": [{"quantity": ' + b"9" * 5000 + b"}]}", "4300 digits"),
    ],
    ids=["10000-nested-arrays", "10000-nested-objects", "latin-1", "5000-digit-number"],
)
async def test_a_body_that_cannot_be_read_as_json_is_a_400_saying_why(
    api: httpx.AsyncClient, body: bytes, reason: str
) -> None:
    """Quickly, and never a RecursionError turned 500."""
    started = time.monotonic()
    answer = await api.post("/orders", content=body, headers={"content-type": "application/json"})
    assert reason in _detail(answer, 400)
    assert time.monotonic() - started < 2


async def test_a_body_nested_within_what_json_parses_is_a_422_with_a_short_echo(
    api: httpx.AsyncClient,
) -> None:
    """500 levels parse; the refusal names the field and shows only the first levels."""
    nested = "[" * 500 + "]" * 500
    body = _order(items="@")
    text = json.dumps(body).replace('"@"', nested).encode()
    answer = await api.post("/orders", content=text, headers={"content-type": "application/json"})
    problems = _problems(answer)
    assert set(problems) == {("body", "items", 0)}
    await _no_saga(api, body["order_id"])


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/xml", "json"],
)
async def test_a_body_not_sent_as_json_is_a_415_naming_the_content_type(
    api: httpx.AsyncClient, content_type: str | None
) -> None:
    """Every body this API takes is JSON: ``application/json`` or a ``+json`` type."""
    order = _order()
    body = json.dumps(order).encode()
    headers = {"content-type": content_type} if content_type else {}
    detail = _detail(await api.post("/orders", content=body, headers=headers), 415)
    assert "Content-Type: application/json" in detail
    assert (content_type or "no Content-Type") in detail
    await _no_saga(api, order["order_id"])


async def test_a_json_type_with_parameters_or_a_suffix_is_read(api: httpx.AsyncClient) -> None:
    """``application/json; charset=utf-8`` and ``application/problem+json`` are JSON."""
    for content_type in ("application/json; charset=utf-8", "application/vnd.saga+json"):
        answer = await api.post(
            "/orders",
            content=b'{"customer_id": 1}',
            headers={"content-type": content_type},
        )
        assert ("body", "customer_id") in _problems(answer)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"items": [{"sku": "SKU-1001", "quantity": "two", "unit_price": 1}]}, "items.0.quantity"),
        ({"items": [{"sku": "SKU-1001", "quantity": 1.5, "unit_price": 1}]}, "items.0.quantity"),
        ({"items": {"sku": "SKU-1001"}}, "items"),
        ({"items": []}, "items"),
        ({"currency": 978}, "currency"),
        ({"currency": "XXY"}, "currency"),
        ({"shipping_address": "Berlin"}, "shipping_address"),
        ({"shipping_address": {"country": "de"}}, "shipping_address.country"),
        ({"customer_id": None}, "customer_id"),
        ({"customer_id": ["cust"]}, "customer_id"),
        ({"payment_token": True}, "payment_token"),
        ({"dispatch_deadline_seconds": -1}, "dispatch_deadline_seconds"),
        ({"dispatch_deadline_seconds": 10**30}, "dispatch_deadline_seconds"),
        ({"unknown_field": 1}, "unknown_field"),
    ],
)
async def test_wrong_types_and_values_are_a_422_naming_the_field(
    api: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    """The location of each problem is the field, the message its reason."""
    order = _order(**change)
    problems = _problems(await api.post("/orders", json=order))
    assert [".".join(str(part) for part in loc[1:]) for loc in problems] == [field]
    await _no_saga(api, order["order_id"])


@pytest.mark.parametrize("constant", [b"NaN", b"Infinity", b"-Infinity", b"1e999999"])
async def test_numbers_json_does_not_have_are_a_422_not_a_500(
    api: httpx.AsyncClient, constant: bytes
) -> None:
    """Python's parser takes NaN and Infinity; they are refused, and echoed as text."""
    body = (
        b'{"customer_id": "c", "items": [{"sku": "S", "quantity": '
        + constant
        + b', "unit_price": 1}], "currency": "EUR", "payment_token": "t",'
        b' "shipping_address": {"country": "DE"}}'
    )
    answer = await api.post("/orders", content=body, headers={"content-type": "application/json"})
    problems = _problems(answer)
    assert set(problems) == {("body", "items", 0, "quantity")}


@pytest.mark.parametrize(
    "order_id",
    [
        "ord-😀",
        "ord\u200b1",  # zero-width space
        "ord-\u202e1",  # right-to-left override
        "ord\x00",
        "ord-\ud800",  # a lone surrogate, as JSON's "\ud800"
        "ord-\uff11",  # a full-width digit
        "\u043erd-1",  # a Cyrillic o
        "ord 1",
        "-ord",
        "o" * 65,
        "o" * 10_000,
        "",
    ],
    ids=[
        "emoji",
        "zero-width-space",
        "rtl-override",
        "nul",
        "lone-surrogate",
        "full-width-digit",
        "cyrillic-look-alike",
        "space",
        "leading-dash",
        "65-chars",
        "10000-chars",
        "empty",
    ],
)
async def test_ids_take_only_ascii_letters_digits_and_a_few_marks(
    api: httpx.AsyncClient, order_id: str
) -> None:
    """An order id (like customer, SKU, token, operator ids) is ASCII letters, digits and
    ``._@:-``, starting with a letter or digit, at most 64 characters: in the body it is a
    422 naming ``order_id``; in the path too (long ones are shortened in the echo)."""
    order = _order(order_id=order_id)
    problems = _problems(await _post(api, "/orders", order))
    assert list(problems) == [("body", "order_id")]
    if not order_id or "\ud800" in order_id:
        return  # no URL holds these (percent-decoding never makes a lone surrogate)
    saga = f"/sagas/{quote(order_id, safe='')}"
    for answer in (
        await api.get(saga),
        await api.get(f"{saga}/events"),
        await api.post(f"{saga}/cancel", json={"reason": "r", "requested_by": "me"}),
    ):
        assert list(_problems(answer)) == [("path", "order_id")]


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ("Zoë 👩‍👩‍👧 محمد 山田", None),  # any script, emoji, joiners
        ("\u05e9\u05dc\u05d5\u05dd \u200fMarks", None),  # Hebrew and a right-to-left mark
        ("Evil\u202egnp.exe", "U+202E"),
        ("Isolate\u2067x", "U+2067"),
        ("NUL\x00byte", "U+0000"),
        ("two\nlines", "U+000A"),
        ("tab\there", "U+0009"),
        ("line\u2028separator", "U+2028"),
        ("escape\x1b[31m", "U+001B"),
        ("lone \ud800 surrogate", "unicode"),
    ],
    ids=[
        "scripts-and-emoji",
        "hebrew-rlm",
        "rtl-override",
        "rtl-isolate",
        "nul",
        "newline",
        "tab",
        "line-separator",
        "ansi-escape",
        "lone-surrogate",
    ],
)
async def test_names_and_reasons_take_any_script_but_no_control_characters(
    api: httpx.AsyncClient, text: str, refused: str | None
) -> None:
    """Free text (name, address lines, city, postal code, reasons) takes any script and
    emoji on one line; control characters, lone surrogates, line separators and
    bidirectional overrides are a 422 naming the field and the character."""
    order = _order(shipping_address={"country": "DE", "name": text, "city": text[:100]})
    answer = await _post(api, "/orders", order)
    if refused is None:
        assert answer.status_code == 202, answer.text
        saga = await api.get(f"/sagas/{order['order_id']}")
        assert saga.status_code == 200, saga.text
        return
    problems = _problems(answer)
    assert set(problems) == {
        ("body", "shipping_address", "name"),
        ("body", "shipping_address", "city"),
    }
    assert refused in problems["body", "shipping_address", "name"]
    # The refusal shows the input, its troublesome characters as \uXXXX text.
    assert not set(answer.text) & set("\u202e\u2067\u2028\x1b")
    cancel = await _post(
        api, f"/sagas/{order['order_id']}/cancel", {"reason": text, "requested_by": "me"}
    )
    assert refused in _problems(cancel)["body", "reason"]
    await _no_saga(api, order["order_id"])


@pytest.mark.parametrize(
    ("url", "parameter"),
    [
        ("/sagas?status=BOGUS", "status"),
        ("/sagas?status=running", "status"),
        ("/sagas?step=nope", "step"),
        ("/sagas?step=" + "s" * 10_000, "step"),
        ("/sagas?page_size=0", "page_size"),
        ("/sagas?page_size=abc", "page_size"),
        ("/sagas?page_size=" + "9" * 40, "page_size"),
        ("/sagas?older_than_seconds=-1", "older_than_seconds"),
        ("/sagas?newer_than_seconds=%00", "newer_than_seconds"),
        ("/sagas?customer_id=%F0%9F%98%80", "customer_id"),
        ("/sagas?customer_id=a%ZZb", "customer_id"),
        ("/sagas?page_token=made-up", "page_token"),
        ("/sagas?page_token=" + "t" * 5000, "page_token"),
        ("/sagas/stuck?older_than_seconds=abc", "older_than_seconds"),
        ("/sagas/stuck?step=%E2%80%AE", "step"),
    ],
)
async def test_bad_query_values_are_a_422_naming_the_parameter(
    api: httpx.AsyncClient, url: str, parameter: str
) -> None:
    """Unknown enum values, numbers out of range or not numbers, ids that are not ids."""
    problems = _problems(await api.get(url))
    assert ("query", parameter) in problems, problems


async def test_a_bad_last_event_id_is_a_422_naming_the_header(api: httpx.AsyncClient) -> None:
    """The event stream's resume point is a number."""
    for value in ("abc", "9" * 5000, "-1"):
        answer = await api.get(f"/sagas/{CUSTOMER}-x/events", headers={"last-event-id": value})
        assert list(_problems(answer)) == [("header", "last-event-id")]


async def test_a_path_of_60000_characters_is_a_422_with_a_short_echo(
    api: httpx.AsyncClient,
) -> None:
    """The server reads it (httpx sends at most 64 KiB of URL); the id is refused."""
    answer = await api.get("/sagas/" + "a" * 60_000)
    assert list(_problems(answer)) == [("path", "order_id")]
    assert len(answer.content) < 1000


async def test_repairs_and_bulk_repairs_refuse_hostile_bodies(api: httpx.AsyncClient) -> None:
    """The other bodies get the same treatment as orders."""
    order_id = f"{CUSTOMER}-repair"
    for url in (f"/sagas/{order_id}/repair", "/sagas/stuck/repair"):
        assert _detail(
            await api.post(url, content=b"x", headers={"content-type": "text/plain"}), 415
        )
        deep = b"[" * 10_000 + b"]" * 10_000
        assert "nested too deeply" in _detail(
            await api.post(url, content=deep, headers={"content-type": "application/json"}), 400
        )
        problems = _problems(
            await api.post(
                url,
                json={
                    "action": "explode",
                    "step": "charge_payment",
                    "operator": "ops\u202e",
                    "reason": "r\x00",
                    "older_than_seconds": "soon",
                },
            )
        )
        assert {("body", "action"), ("body", "operator"), ("body", "reason")} <= set(problems)
    await _no_saga(api, order_id)


async def test_no_hostile_request_started_a_saga(api: httpx.AsyncClient) -> None:
    """Only the orders with printable names were accepted: every other saga of the customer
    would be one that a refused request started."""
    listed = await api.get("/sagas", params={"customer_id": CUSTOMER, "page_size": 500})
    assert listed.status_code == 200, listed.text
    names = [saga["order_id"] for saga in listed.json()["sagas"]]
    assert len(names) <= 2, names
