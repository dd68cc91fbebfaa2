"""``POST /codec/decode`` and ``/codec/encode``: Temporal's remote codec protocol.

The Temporal Web UI (``--ui-codec-endpoint``, or its "Codec Server" setting) and the
`temporal` CLI (``--codec-endpoint``, ``--codec-auth``) send the payloads of a history here
to show them decrypted. Bodies are ``temporal.api.common.v1.Payloads`` in proto3 JSON
(``{"payloads": [{"metadata": {k: base64}, "data": base64}]}``), read and written with
protobuf's own ``json_format``. One codec serves every namespace, so ``X-Namespace`` is
accepted and not needed.
"""

from collections.abc import Sequence
from typing import Any

from fastapi import APIRouter, HTTPException, status
from google.protobuf import json_format
from pydantic import BaseModel, Field
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from infra.config.payload_codec import CODEC_PATH, PayloadDecryptionError
from orchestrator.api.models import ProblemDetail

__all__ = ["CodecCors", "CodecPayload", "CodecPayloads", "codec_router"]


class CodecPayload(BaseModel):
    """One Temporal payload in proto3 JSON: each metadata value and the data in base64."""

    metadata: dict[str, str] = Field(default_factory=dict)
    data: str = ""


class CodecPayloads(BaseModel):
    """The body of the codec protocol, asked and answered."""

    payloads: list[CodecPayload]


def _payloads(body: CodecPayloads) -> Payloads:
    try:
        return json_format.ParseDict(body.model_dump(), Payloads())
    except json_format.ParseError as exc:
        raise HTTPException(
            status.HTTP_400_BAD_REQUEST, f"the payloads are not Temporal payloads: {exc}"
        ) from None


def _body(payloads: Payloads) -> CodecPayloads:
    return CodecPayloads.model_validate(json_format.MessageToDict(payloads))


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"model": ProblemDetail, "description": "A payload does not decode or decrypt."},
    413: {"model": ProblemDetail, "description": "The body is over SAGA_API_MAX_BODY_BYTES."},
    415: {"model": ProblemDetail, "description": "The body is not sent as application/json."},
}


def codec_router(codec: PayloadCodec, *, dependencies: Sequence[Any]) -> APIRouter:
    """The codec routes over ``codec``, behind ``dependencies`` (the API's token check)."""
    router = APIRouter(prefix=CODEC_PATH, tags=["codec"], dependencies=list(dependencies))

    @router.post("/decode", response_model=CodecPayloads, responses=_RESPONSES)
    async def decode(body: CodecPayloads) -> CodecPayloads:
        """Decrypt payloads; those written unencrypted come back as they are."""
        payloads = _payloads(body)
        try:
            await codec.decode_wrapper(payloads)
        except PayloadDecryptionError as exc:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, str(exc)) from None
        return _body(payloads)

    @router.post("/encode", response_model=CodecPayloads, responses=_RESPONSES)
    async def encode(body: CodecPayloads) -> CodecPayloads:
        """Encrypt payloads (inputs that the Web UI or the CLI sends to a workflow)."""
        payloads = _payloads(body)
        await codec.encode_wrapper(payloads)
        return _body(payloads)

    return router


class CodecCors:
    """Starlette's CORS middleware for the codec routes only.

    The Web UI calls the codec from the browser, on its own origin, with the user's
    ``Authorization``; the rest of the API stays closed to other origins.
    """

    def __init__(self, app: ASGIApp, *, origins: Sequence[str]) -> None:
        self._app = app
        self._cors = CORSMiddleware(
            app,
            allow_origins=list(origins),
            allow_methods=["POST"],
            allow_headers=["Authorization", "Content-Type", "X-Namespace"],
            allow_credentials=True,
            max_age=600,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = str(scope.get("path", ""))
        if scope["type"] == "http" and path.startswith(CODEC_PATH + "/"):
            await self._cors(scope, receive, send)
        else:
            await self._app(scope, receive, send)
