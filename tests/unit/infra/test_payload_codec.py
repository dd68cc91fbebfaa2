"""Payload encryption without a server: the codec endpoint encodes and refuses what it cannot
read, a relabelled payload does not decrypt, and the keys and settings are read and refused
naming the setting. What Temporal stores, and rotation on a real server:
``tests/system/infra/test_payload_codec.py``.
"""

import base64
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.contrib.pydantic import pydantic_data_converter

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
from orchestrator.api.app import create_app
from tests.support.codec import (
    K1,
    K2,
    TOKEN,
    UI_ORIGIN,
    codec_api,
    encrypted_settings,
    payloads_body,
)

# --- The codec endpoint -------------------------------------------------------------------


@pytest.fixture
async def codec_http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API with encryption on and the codec tokens (``tests.support.codec.codec_api``)."""
    async with codec_api(tmp_path) as http:
        yield http


async def test_the_codec_endpoint_encodes_and_refuses_what_it_cannot_read(
    codec_http: httpx.AsyncClient,
) -> None:
    auth = {"Authorization": f"Bearer {TOKEN}"}
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'"secret"')

    encoded = await codec_http.post("/codec/encode", json=payloads_body([plain]), headers=auth)
    (sealed,) = json_format.ParseDict(encoded.json(), Payloads()).payloads
    back = await codec_http.post("/codec/decode", json=payloads_body([sealed]), headers=auth)
    foreign = Payload(
        metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: b"k9"}, data=sealed.data
    )
    unknown = await codec_http.post("/codec/decode", json=payloads_body([foreign]), headers=auth)
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

    assert {"/codec/decode", "/codec/encode"} <= paths(encrypted_settings(tmp_path, f"k1:{K1}"))
    assert not {"/codec/decode", "/codec/encode"} & paths(Settings(run_dir=tmp_path))


# --- Rotation -------------------------------------------------------------------------------


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
    converter = data_converter(encrypted_settings(tmp_path, f"k2:{K2},k1:{K1}"))

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
    settings = encrypted_settings(tmp_path, keys, mode="production")

    with pytest.raises(ConfigurationError, match=problem):
        data_converter(settings)
    assert ensure_development_keys(settings) is None
    assert not (tmp_path / PAYLOAD_KEYS_FILE).exists()


def test_development_keys_are_made_once_and_read_by_every_process(tmp_path: Path) -> None:
    settings = encrypted_settings(tmp_path)

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
    assert ensure_development_keys(encrypted_settings(tmp_path / "given", f"k1:{K1}")) is None
    assert ensure_development_keys(Settings(run_dir=tmp_path / "off")) is None


def test_the_api_and_the_stack_refuse_to_start_without_production_keys(tmp_path: Path) -> None:
    settings = encrypted_settings(tmp_path, mode="production")

    with pytest.raises(ConfigurationError, match="SAGA_PAYLOAD_KEYS"):
        create_app(settings)
    with pytest.raises(ConfigurationError, match="SAGA_PAYLOAD_KEYS"):
        Stack(settings, say=lambda _: None).up()


def test_the_embedded_web_ui_decodes_through_the_api(tmp_path: Path) -> None:
    on = Stack(encrypted_settings(tmp_path, f"k1:{K1}", api_port=8123), say=lambda _: None)
    off = Stack(Settings(run_dir=tmp_path), say=lambda _: None)

    command = on.command("temporal")
    assert command[command.index("--ui-codec-endpoint") + 1] == "http://127.0.0.1:8123/codec"
    assert "--ui-codec-endpoint" not in off.command("temporal")
