"""Bearer tokens of the orchestrator API: their scopes, how they are configured, and the
development token of a run directory.

The API stores no token, only its SHA-256 (``SAGA_API_TOKENS``). A slow password hash
(bcrypt, scrypt, Argon2) protects low-entropy secrets that people choose; these tokens are
random strings of 256 bits (``secrets.token_urlsafe(32)``), which no dictionary or brute
force reaches, so one SHA-256 is as strong and costs nothing per request.

The project's own clients (`saga`'s operations commands, the benchmark, the chaos and soak
runs, the tests) send their token through :func:`api_headers`, and only through it.
"""

import contextlib
import hashlib
import json
import os
import secrets
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError

__all__ = [
    "DEV_TOKEN_FILE",
    "ApiTokenEntry",
    "Scope",
    "ensure_dev_token",
    "is_placeholder",
    "parse_api_tokens",
    "production_problem",
    "read_dev_token",
    "token_sha256",
]

DEV_TOKEN_FILE = "dev-token"
"""The development token's file in the run directory (mode 0600), made by `saga up`."""


class Scope(StrEnum):
    """What a token may do; each route asks for one."""

    ORDERS_PLACE = "orders:place"
    SAGAS_READ = "sagas:read"
    SAGAS_OPERATE = "sagas:operate"
    CODEC_DECODE = "codec:decode"


_Sha256 = Annotated[str, StringConstraints(to_lower=True, pattern=r"^[0-9a-fA-F]{64}$")]


class ApiTokenEntry(BaseModel):
    """One token the API accepts: who it is, the SHA-256 of the token, and its scopes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]*$")
    sha256: _Sha256
    scopes: list[Scope] = Field(min_length=1)


_ENTRIES = TypeAdapter(list[ApiTokenEntry])
_EXAMPLE = json.dumps([{"name": "ops", "sha256": "<64 hex digits>", "scopes": list(Scope)}])

# Hashes of secrets that stand in for a real one in examples and templates.
_PLACEHOLDERS = frozenset(
    hashlib.sha256(text.encode()).hexdigest()
    for text in (
        "",
        "changeme",
        "change-me",
        "change_me",
        "placeholder",
        "secret",
        "password",
        "token",
        "test",
        "example",
        "development",
    )
)


def token_sha256(token: str) -> str:
    """The hex SHA-256 of ``token``, as ``SAGA_API_TOKENS`` holds it."""
    return hashlib.sha256(token.encode()).hexdigest()


def is_placeholder(sha256: str) -> bool:
    """Whether ``sha256`` is the hash of a well-known placeholder, or a made-up one
    (``000...``): a token nobody should be able to use in production."""
    return sha256 in _PLACEHOLDERS or len(set(sha256)) == 1


def parse_api_tokens(text: str) -> list[ApiTokenEntry]:
    """The entries of ``SAGA_API_TOKENS``.

    Raises:
        ValueError: not a JSON list of entries, an unknown scope, a hash that is not 64 hex
            digits, or a name given twice; the message says which.
    """
    try:
        entries = _ENTRIES.validate_json(text)
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = "".join(
                f"[{part}]" if isinstance(part, int) else f".{part}" for part in error["loc"]
            )
            problems.append(f"{where}: {error['msg']}" if where else error["msg"])
        raise ValueError("; ".join(problems) + f" (expected {_EXAMPLE})") from None
    names = [entry.name for entry in entries]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"token name given twice: {', '.join(twice)}")
    return entries


def read_dev_token(run_dir: Path) -> str | None:
    """The development token of ``run_dir``, or None when `saga up` has not made one."""
    try:
        token = (run_dir / DEV_TOKEN_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return token or None


def ensure_dev_token(run_dir: Path) -> str:
    """The development token of ``run_dir``, made once (readable by its owner only).

    Made with ``O_EXCL``, so `saga up` and an API starting at the same time agree on one.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / DEV_TOKEN_FILE
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    token = read_dev_token(run_dir)
    if token is None:
        raise OSError(f"{path} is empty: delete it and run `saga up` again")
    return token


def production_problem(text: str | None) -> str | None:
    """Why ``SAGA_API_TOKENS`` cannot secure the API in production, or None when it can."""
    entries = parse_api_tokens(text) if text and text.strip() else []
    if not entries:
        return (
            "SAGA_API_TOKENS is missing or empty: in production (SAGA_MODE=production) the "
            "API needs at least one token (see docs/security.md)"
        )
    for entry in entries:
        if is_placeholder(entry.sha256):
            return (
                f"SAGA_API_TOKENS: the token {entry.name!r} has a placeholder hash: make a "
                "random token and put its SHA-256 there (see docs/security.md)"
            )
    return None
