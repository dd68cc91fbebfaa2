"""Payload encryption: what Temporal stores is ciphertext, the codec endpoint decodes it only
for a caller with the right token, and a rotated key list still reads old histories.

The histories are written on the session's real Temporal dev server by a small workflow
whose activity takes a whole order (its address and payment token carry a marker).
"""

import base64
import json
import os
import stat
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Worker

from contracts.activities import Order, ShippingAddress
from contracts.events.common import OrderLine
from infra.config.api_tokens import Scope, token_sha256
from infra.config.payload_codec import (
    ENCRYPTED_ENCODING,
    KEY_ID_METADATA,
    PAYLOAD_KEYS_FILE,
    EncryptionCodec,
    PayloadDecryptionError,
    data_converter,
    ensure_development_keys,
    parse_payload_keys,
)
from infra.config.settings import ConfigurationError, Settings
from infra.engines.stack import Stack
from infra.engines.temporal_server import TemporalDevServer
from ops.replay import replay_histories
from orchestrator.api.app import create_app
from tests.support.codec_workflow import DescribeOrder, describe_order
from tests.support.temporal_history import history_payloads, raw_history

K1 = base64.b64encode(b"\x01" * 16 + b"\x02" * 16).decode()
K2 = base64.b64encode(bytes(range(32))).decode()
TOKEN = "codec-test-token"
READER = "codec-test-reader"
UI_PORT = 18233
UI_ORIGIN = f"http://127.0.0.1:{UI_PORT}"


def _settings(tmp_path: Path, keys: str | None = None, **overrides: Any) -> Settings:
    return Settings(
        run_dir=tmp_path,
        payload_encryption=True,
        payload_keys=SecretStr(keys) if keys is not None else None,
        **overrides,
    )


def _converter(keys: str) -> DataConverter:
    return data_converter(Settings(payload_encryption=True, payload_keys=SecretStr(keys)))


def _order(marker: str) -> Order:
    return Order(
        order_id=f"codec-{uuid.uuid4().hex[:12]}",
        customer_id="cust-codec",
        items=[OrderLine(sku="SKU-1", quantity=1, unit_price_minor=100)],
        currency="EUR",
        payment_token=f"tok_{marker}",
        shipping_address=ShippingAddress(
            country="DE", name=f"Ada {marker}", line1=f"{marker} Street 1", postal_code="10115"
        ),
    )


@dataclass(frozen=True)
class Run:
    """One finished run of the test workflow and its history as the server keeps it."""

    workflow_id: str
    marker: str
    history: WorkflowHistory


async def _run(server: TemporalDevServer, converter: DataConverter, raw: Client) -> Run:
    """Run the workflow with ``converter``; fetch its history with ``raw`` (no codec)."""
    client = await Client.connect(
        server.address, namespace=server.namespace, data_converter=converter
    )
    marker = f"MARKER{uuid.uuid4().hex}"
    task_queue = f"codec-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=task_queue,
        workflows=[DescribeOrder],
        activities=[describe_order],
    ):
        handle = await client.start_workflow(
            DescribeOrder.run, _order(marker), id=f"codec-{uuid.uuid4()}", task_queue=task_queue
        )
        assert marker in await handle.result()
    history = await raw.get_workflow_handle(handle.id).fetch_history()
    return Run(handle.id, marker, history)


@pytest.fixture(scope="module")
async def k1_run(temporal_server: TemporalDevServer, temporal_client: Client) -> Run:
    """A run written with key ``k1`` alone."""
    return await _run(temporal_server, _converter(f"k1:{K1}"), temporal_client)


# --- What Temporal stores ---------------------------------------------------------------


async def test_temporal_stores_only_ciphertext(k1_run: Run) -> None:
    """Workflow input, activity input and result, workflow result: all encrypted with k1."""
    payloads = history_payloads(k1_run.history)

    assert len(payloads) == 4
    for payload in payloads:
        assert payload.metadata["encoding"] == ENCRYPTED_ENCODING
        assert payload.metadata[KEY_ID_METADATA] == b"k1"
    raw = raw_history(k1_run.history)
    assert k1_run.marker.encode() not in raw
    assert b"10115" not in raw


async def test_encryption_off_stores_plain_json(
    temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    """The same workflow without encryption: the marker is in the history (the control)."""
    run = await _run(temporal_server, data_converter(Settings()), temporal_client)

    assert {p.metadata["encoding"] for p in history_payloads(run.history)} == {b"json/plain"}
    assert run.marker.encode() in b"".join(e.SerializeToString() for e in run.history.events)


# --- The codec endpoint -------------------------------------------------------------------


@pytest.fixture
async def codec_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API itself with encryption on (keys k1) and two tokens: ``TOKEN`` with the
    ``codec:decode`` scope, ``READER`` with ``sagas:read`` only. Its codec routes need neither
    Temporal nor Kafka, so the app is called without its start-up."""
    tokens = [
        {"name": "ui", "sha256": token_sha256(TOKEN), "scopes": [Scope.CODEC_DECODE]},
        {"name": "reader", "sha256": token_sha256(READER), "scopes": [Scope.SAGAS_READ]},
    ]
    settings = _settings(
        tmp_path, f"k1:{K1}", api_tokens=json.dumps(tokens), temporal_ui_port=UI_PORT
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def _body(payloads: list[Payload]) -> dict[str, Any]:
    return json_format.MessageToDict(Payloads(payloads=payloads))


async def test_the_codec_endpoint_decodes_only_with_the_right_token(
    k1_run: Run, codec_http: httpx.AsyncClient
) -> None:
    body = _body(history_payloads(k1_run.history))
    headers = {"X-Namespace": "default"}

    missing = await codec_http.post("/codec/decode", json=body, headers=headers)
    wrong = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": "Bearer nope"}
    )
    unscoped = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": f"Bearer {READER}"}
    )
    right = await codec_http.post(
        "/codec/decode", json=body, headers={**headers, "Authorization": f"Bearer {TOKEN}"}
    )

    assert (missing.status_code, wrong.status_code, unscoped.status_code) == (401, 401, 403)
    assert "codec:decode" in unscoped.json()["detail"]
    assert k1_run.marker not in missing.text + wrong.text + unscoped.text
    assert right.status_code == 200, right.text
    decoded = json_format.ParseDict(right.json(), Payloads()).payloads
    assert [p.metadata["encoding"] for p in decoded] == [b"json/plain"] * 4
    assert all(k1_run.marker.encode() in p.data for p in decoded)


async def test_the_codec_endpoint_encodes_and_refuses_what_it_cannot_read(
    codec_http: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"secret"')

    encoded = await codec_http.post("/codec/encode", json=_body([plain]), headers=auth)
    (sealed,) = json_format.ParseDict(encoded.json(), Payloads()).payloads
    back = await codec_http.post("/codec/decode", json=_body([sealed]), headers=auth)
    foreign = Payload(
        metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: b"k9"}, data=sealed.data
    )
    unknown = await codec_http.post("/codec/decode", json=_body([foreign]), headers=auth)
    garbage = await codec_http.post(
        "/codec/decode", json={"payloads": [{"data": "not base64!"}]}, headers=auth
    )

    assert encoded.status_code == 200
    assert sealed.metadata["encoding"] == ENCRYPTED_ENCODING
    assert b"secret" not in sealed.data
    assert json_format.ParseDict(back.json(), Payloads()).payloads == [plain]
    assert unknown.status_code == 400
    assert "'k9'" in unknown.json()["detail"]
    assert garbage.status_code == 400


async def test_cross_origin_calls_are_allowed_on_the_codec_only(
    codec_http: httpx.AsyncClient,
) -> None:
    """The Web UI's preflight passes on /codec (before any token check); not elsewhere."""
    preflight = {
        "Origin": UI_ORIGIN,
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type,x-namespace",
    }

    codec = await codec_http.options("/codec/decode", headers=preflight)
    other_origin = await codec_http.options(
        "/codec/decode", headers={**preflight, "Origin": "http://evil.example"}
    )
    other_route = await codec_http.get("/sagas", headers={"Origin": UI_ORIGIN})

    assert codec.status_code == 200
    assert codec.headers["access-control-allow-origin"] == UI_ORIGIN
    assert "authorization" in codec.headers["access-control-allow-headers"].lower()
    assert other_origin.status_code == 400
    assert "access-control-allow-origin" not in other_route.headers


def test_the_api_serves_the_codec_only_with_encryption_on(tmp_path: Path) -> None:
    def paths(settings: Settings) -> set[str]:
        return set(create_app(settings).openapi()["paths"])

    assert {"/codec/decode", "/codec/encode"} <= paths(_settings(tmp_path, f"k1:{K1}"))
    assert not {"/codec/decode", "/codec/encode"} & paths(Settings(run_dir=tmp_path))


# --- Rotation -------------------------------------------------------------------------------


async def test_a_rotated_key_list_reads_old_histories_and_writes_with_the_new_key(
    k1_run: Run, temporal_server: TemporalDevServer, temporal_client: Client
) -> None:
    rotated = _converter(f"k2:{K2},k1:{K1}")
    client = await Client.connect(
        temporal_server.address, namespace=temporal_server.namespace, data_converter=rotated
    )

    result = await client.get_workflow_handle(k1_run.workflow_id).result()
    report = await replay_histories(
        [k1_run.history], workflows=[DescribeOrder], data_converter=rotated
    )
    new_run = await _run(temporal_server, rotated, temporal_client)

    assert k1_run.marker in result
    assert report.ok, report.summary()
    assert {p.metadata[KEY_ID_METADATA] for p in history_payloads(new_run.history)} == {b"k2"}


async def test_without_the_old_key_an_old_history_fails_naming_the_key(
    k1_run: Run, temporal_server: TemporalDevServer
) -> None:
    k2_only = _converter(f"k2:{K2}")
    client = await Client.connect(
        temporal_server.address, namespace=temporal_server.namespace, data_converter=k2_only
    )

    with pytest.raises(PayloadDecryptionError, match=r"key id 'k1'.*SAGA_PAYLOAD_KEYS"):
        await client.get_workflow_handle(k1_run.workflow_id).result()
    report = await replay_histories(
        [k1_run.history], workflows=[DescribeOrder], data_converter=k2_only
    )
    (outcome,) = report.failures
    assert "key id 'k1'" in (outcome.error or ""), outcome.error


async def test_a_payload_relabelled_with_another_key_id_does_not_decrypt() -> None:
    """The key id is authenticated: moving a payload to another key's id fails, loudly."""
    codec = EncryptionCodec(parse_payload_keys(f"k1:{K1},k2:{K1}"))
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    sealed.metadata[KEY_ID_METADATA] = b"k2"

    with pytest.raises(PayloadDecryptionError, match=r"'k2'.*altered"):
        await codec.decode([sealed])


async def test_payloads_written_without_encryption_still_decode() -> None:
    codec = EncryptionCodec(parse_payload_keys(f"k1:{K1}"))
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')

    assert await codec.decode([plain]) == [plain]


# --- Keys and settings ------------------------------------------------------------------------


def test_keys_are_read_in_order() -> None:
    keys = parse_payload_keys(f" k2:{K2} , k1:{K1}\n")

    assert list(keys) == ["k2", "k1"]
    assert keys["k1"] == base64.b64decode(K1)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("", "is empty"),
        (" , ", "is empty"),
        (K1, "not id:base64-key"),
        (f"k1:{K1},k2", "key 2: not id:base64-key"),
        (f"k 1:{K1}", "the id 'k 1' is not"),
        ("k1:not*base64", "'k1'\\): the key is not base64"),
        (f"k1:{base64.b64encode(b'short').decode()}", "the key is 5 bytes, not 32"),
        (f"k1:{K1},k1:{K2}", "key 2: the id 'k1' is given twice"),
    ],
)
def test_bad_keys_are_refused_naming_the_setting(spec: str, problem: str) -> None:
    with pytest.raises(ConfigurationError, match=f"SAGA_PAYLOAD_KEYS.*{problem}") as refused:
        parse_payload_keys(spec)

    assert K1 not in str(refused.value)
    assert K2 not in str(refused.value)


def test_encryption_off_is_the_plain_pydantic_converter(tmp_path: Path) -> None:
    assert data_converter(Settings(run_dir=tmp_path)) is pydantic_data_converter


def test_encryption_on_wraps_the_pydantic_converter(tmp_path: Path) -> None:
    converter = data_converter(_settings(tmp_path, f"k2:{K2},k1:{K1}"))

    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_id == "k2"
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (None, "production mode but SAGA_PAYLOAD_KEYS is not set"),
        ("  ", "production mode but SAGA_PAYLOAD_KEYS is not set"),
        (f"k1:{base64.b64encode(bytes(32)).decode()}", "'k1' is a placeholder"),
    ],
)
def test_production_refuses_missing_or_placeholder_keys(
    tmp_path: Path, keys: str | None, problem: str
) -> None:
    settings = _settings(tmp_path, keys, mode="production")

    with pytest.raises(ConfigurationError, match=problem):
        data_converter(settings)
    assert ensure_development_keys(settings) is None
    assert not (tmp_path / PAYLOAD_KEYS_FILE).exists()


def test_development_keys_are_made_once_and_read_by_every_process(tmp_path: Path) -> None:
    settings = _settings(tmp_path)

    with pytest.raises(ConfigurationError, match="run `saga up`"):
        data_converter(settings)
    path = ensure_development_keys(settings)
    first = (tmp_path / PAYLOAD_KEYS_FILE).read_text()
    again = ensure_development_keys(settings)
    converter = data_converter(settings)

    assert path == again == (tmp_path / PAYLOAD_KEYS_FILE).resolve()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert (tmp_path / PAYLOAD_KEYS_FILE).read_text() == first
    assert list(parse_payload_keys(first)) == ["k1"]
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_id == "k1"
    assert ensure_development_keys(_settings(tmp_path / "given", f"k1:{K1}")) is None
    assert ensure_development_keys(Settings(run_dir=tmp_path / "off")) is None


def test_the_api_and_the_stack_refuse_to_start_without_production_keys(tmp_path: Path) -> None:
    settings = _settings(tmp_path, mode="production")

    with pytest.raises(ConfigurationError, match="SAGA_PAYLOAD_KEYS"):
        create_app(settings)
    with pytest.raises(ConfigurationError, match="SAGA_PAYLOAD_KEYS"):
        Stack(settings, say=lambda _: None).up()


def test_the_embedded_web_ui_decodes_through_the_api(tmp_path: Path) -> None:
    on = Stack(_settings(tmp_path, f"k1:{K1}", api_port=8123), say=lambda _: None)
    off = Stack(Settings(run_dir=tmp_path), say=lambda _: None)

    command = on.command("temporal")
    assert command[command.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8123/codec"
    assert "--ui-codec-endpoint" not in off.command("temporal")
