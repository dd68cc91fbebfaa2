"""Encryption of the payloads Temporal stores: a payload codec (AES-GCM, keys named by an id).

With ``SAGA_PAYLOAD_ENCRYPTION`` on, every workflow and activity input and result leaves a
process as ``binary/encrypted`` ciphertext: Temporal's server, its database and its Web UI
(without the codec endpoint) never see an order's address or payment token. Keys come from
``SAGA_PAYLOAD_KEYS`` (``id:base64-of-32-bytes,...``): the first key encrypts, every key
decrypts, so a new key is put first and old histories still decode while the old keys stay.
In development mode, unset keys are read from ``<run_dir>/payload-keys``, which `saga up`
makes once (:func:`ensure_development_keys`).
"""

import base64
import binascii
import dataclasses
import os
import re
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from infra.config.settings import ConfigurationError, Settings

__all__ = [
    "CODEC_PATH",
    "ENCRYPTED_ENCODING",
    "KEY_ID_METADATA",
    "PAYLOAD_KEYS_FILE",
    "EncryptionCodec",
    "PayloadDecryptionError",
    "data_converter",
    "ensure_development_keys",
    "new_key_spec",
    "parse_payload_keys",
    "payload_codec",
]

CODEC_PATH = "/codec"  # where the API serves the codec for the Web UI (``<api_url>/codec``)
ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID_METADATA = "encryption-key-id"
PAYLOAD_KEYS_FILE = "payload-keys"

_KEY_BYTES = 32  # AES-256
_NONCE_BYTES = 12  # GCM's standard nonce; random per payload
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_SETTING = "SAGA_PAYLOAD_KEYS"


class PayloadDecryptionError(Exception):
    """An encrypted payload cannot be decrypted: its key is unknown, or it was altered."""


class EncryptionCodec(PayloadCodec):
    """AES-GCM over each whole serialized payload, its metadata included.

    The output payload says ``encoding: binary/encrypted`` and names its key in
    ``encryption-key-id``; its data is the 12-byte nonce followed by the ciphertext. The key
    id is bound to the ciphertext as associated data, so a payload relabelled with another
    key id fails to decrypt rather than decrypting under the wrong key.
    """

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        """``keys``: key id to 32 key bytes, in order; the first one encrypts."""
        if not keys:
            raise ValueError("an EncryptionCodec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self._key_id = next(iter(keys))

    @property
    def key_id(self) -> str:
        """The id of the key that new payloads are encrypted with."""
        return self._key_id

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt each payload with the first key."""
        cipher = self._ciphers[self._key_id]
        key_id = self._key_id.encode()
        encoded = []
        for payload in payloads:
            nonce = os.urandom(_NONCE_BYTES)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id)
            encoded.append(
                Payload(
                    metadata={"encoding": ENCRYPTED_ENCODING, KEY_ID_METADATA: key_id},
                    data=nonce + sealed,
                )
            )
        return encoded

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt the encrypted payloads; others (written with encryption off) pass as they are.

        Raises:
            PayloadDecryptionError: a payload's key id is not among the keys, or its
                ciphertext does not authenticate under that key.
        """
        return [self._decrypt(payload) for payload in payloads]

    def _decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCRYPTED_ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID_METADATA, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            known = ", ".join(self._ciphers)
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r}, which is not among the payload "
                f"keys ({known}): add that key to {_SETTING} (keep old keys after a rotation)"
            )
        nonce, sealed = payload.data[:_NONCE_BYTES], payload.data[_NONCE_BYTES:]
        try:
            plain = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise PayloadDecryptionError(
                f"payload encrypted with key id {key_id!r} does not decrypt with the key of "
                f"that id in {_SETTING}: the key was changed, or the payload was altered"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


def parse_payload_keys(spec: str) -> dict[str, bytes]:
    """Read ``id:base64-of-32-bytes,...`` into key id to key bytes, in order.

    Raises:
        ConfigurationError: the text is empty, an entry is not ``id:key``, a key is not
            base64 of 32 bytes, or an id repeats. The message never shows key material.
    """
    keys: dict[str, bytes] = {}
    entries = [entry.strip() for entry in spec.replace("\n", ",").split(",")]
    entries = [entry for entry in entries if entry]
    if not entries:
        raise ConfigurationError(f"{_SETTING} is empty: give at least one id:base64-key")
    for position, entry in enumerate(entries, start=1):
        key_id, sep, encoded = entry.partition(":")
        key_id, encoded = key_id.strip(), encoded.strip()
        where = f"{_SETTING}, key {position}"
        if not sep or not key_id or not encoded:
            raise ConfigurationError(f"{where}: not id:base64-key")
        if not _KEY_ID.fullmatch(key_id):
            raise ConfigurationError(
                f"{where}: the id {key_id!r} is not 1 to 64 letters, digits, '.', '_' or '-'"
            )
        try:
            key = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise ConfigurationError(f"{where} ({key_id!r}): the key is not base64") from None
        if len(key) != _KEY_BYTES:
            raise ConfigurationError(
                f"{where} ({key_id!r}): the key is {len(key)} bytes, not {_KEY_BYTES} "
                '(make one with `python -c "import base64, os; '
                'print(base64.b64encode(os.urandom(32)).decode())"`)'
            )
        if key_id in keys:
            raise ConfigurationError(f"{where}: the id {key_id!r} is given twice")
        keys[key_id] = key
    return keys


def new_key_spec(key_id: str = "k1") -> str:
    """A fresh random key as ``SAGA_PAYLOAD_KEYS`` takes it: ``k1:<base64 of 32 bytes>``."""
    return f"{key_id}:{base64.b64encode(secrets.token_bytes(_KEY_BYTES)).decode()}"


def _development_keys_file(settings: Settings) -> Path:
    return settings.run_dir.resolve() / PAYLOAD_KEYS_FILE


def ensure_development_keys(settings: Settings) -> Path | None:
    """Make ``<run_dir>/payload-keys`` (mode 0600, one random key ``k1``) if this stack
    encrypts in development mode without ``SAGA_PAYLOAD_KEYS`` and it does not exist yet.

    Returns the file when the stack's processes read their keys from it, else None.
    """
    if not settings.payload_encryption or settings.mode != "development":
        return None
    if settings.payload_keys is not None and settings.payload_keys.get_secret_value().strip():
        return None
    path = _development_keys_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path  # made by an earlier `saga up`: its histories need the same key
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(new_key_spec() + "\n")
    return path


def _key_spec(settings: Settings) -> str:
    secret = settings.payload_keys
    spec = secret.get_secret_value().strip() if secret is not None else ""
    if spec:
        return spec
    if settings.mode == "production":
        raise ConfigurationError(
            f"SAGA_PAYLOAD_ENCRYPTION is on in production mode but {_SETTING} is not set: "
            "give the payload keys (id:base64-of-32-bytes,...)"
        )
    path = _development_keys_file(settings)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigurationError(
            f"SAGA_PAYLOAD_ENCRYPTION is on but {_SETTING} is not set and {path} does not "
            "exist: run `saga up` (it makes development keys) or set the keys"
        ) from None


def _refuse_placeholders(keys: Mapping[str, bytes]) -> None:
    for key_id, key in keys.items():
        if len(set(key)) == 1:  # all zeros, or another copied example, never a random key
            raise ConfigurationError(
                f"{_SETTING}: the key {key_id!r} is a placeholder (one byte repeated): "
                "production needs random keys"
            )


def payload_codec(settings: Settings) -> EncryptionCodec | None:
    """The codec of these settings: None with encryption off.

    Raises:
        ConfigurationError: encryption is on and the keys are missing or unusable (in
            production also a placeholder key).
    """
    if not settings.payload_encryption:
        return None
    keys = parse_payload_keys(_key_spec(settings))
    if settings.mode == "production":
        _refuse_placeholders(keys)
    return EncryptionCodec(keys)


def data_converter(settings: Settings) -> DataConverter:
    """The data converter of every client, worker and replayer: pydantic's, encrypting its
    payloads when ``SAGA_PAYLOAD_ENCRYPTION`` is on.

    Raises:
        ConfigurationError: as :func:`payload_codec`.
    """
    codec = payload_codec(settings)
    if codec is None:
        return pydantic_data_converter
    return dataclasses.replace(pydantic_data_converter, payload_codec=codec)
