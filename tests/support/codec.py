"""Payload encryption in the tests: the keys, the tokens of the codec endpoint, the API with
encryption on, and payloads as the codec endpoint reads them."""

import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from google.protobuf import json_format
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads

from infra.config.api_tokens import Scope, token_sha256
from infra.config.settings import Settings
from orchestrator.api.app import create_app

K1 = base64.b64encode(b"\x01" * 16 + b"\x02" * 16).decode()
K2 = base64.b64encode(bytes(range(32))).decode()
TOKEN = "codec-test-token"
READER = "codec-test-reader"
UI_PORT = 18233
UI_ORIGIN = f"http://127.0.0.1:{UI_PORT}"


def encrypted_settings(tmp_path: Path, keys: str | None = None, **overrides: Any) -> Settings:
    """Settings with payload encryption on, and ``keys`` (if given) as its key list."""
    return Settings(
        run_dir=tmp_path,
        payload_encryption=True,
        payload_keys=SecretStr(keys) if keys is not None else None,
        **overrides,
    )


@asynccontextmanager
async def codec_api(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The API itself with encryption on (keys k1) and two tokens: ``TOKEN`` with the
    ``codec:decode`` scope, ``READER`` with ``sagas:read`` only. Its codec routes need neither
    Temporal nor Kafka, so the app is called without its start-up."""
    tokens = [
        {"name": "ui", "sha256": token_sha256(TOKEN), "scopes": [Scope.CODEC_DECODE]},
        {"name": "reader", "sha256": token_sha256(READER), "scopes": [Scope.SAGAS_READ]},
    ]
    settings = encrypted_settings(
        tmp_path, f"k1:{K1}", api_tokens=json.dumps(tokens), temporal_ui_port=UI_PORT
    )
    transport = httpx.ASGITransport(app=create_app(settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        yield http


def payloads_body(payloads: list[Payload]) -> dict[str, Any]:
    """``payloads`` as the codec endpoint takes and answers them (Temporal's JSON)."""
    return json_format.MessageToDict(Payloads(payloads=payloads))
