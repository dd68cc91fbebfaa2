"""Who is signed in to the web pages: a signed session cookie, and the CSRF token of forms.

The cookie (``saga_session``) holds the SHA-256 of the token the operator signed in with
(never the token) and a random nonce, signed with ``SAGA_UI_SESSION_SECRET`` by
itsdangerous and dated, so it lasts ``SAGA_UI_SESSION_HOURS``. Every request looks the hash
up in the API's :class:`~orchestrator.api.auth.TokenStore` again: a token taken out of
``SAGA_API_TOKENS`` loses the pages with the API.

Each form carries ``csrf``, the HMAC of the session's nonce: a page of another site can make
the browser post, but cannot read the value (and ``SameSite=Strict`` keeps the cookie off
such posts anyway).
"""

import contextlib
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from infra.config.api_tokens import token_sha256
from infra.config.settings import ConfigurationError, Settings

__all__ = [
    "SECRET_FILE",
    "SESSION_COOKIE",
    "UI_PATH",
    "Session",
    "SessionKeeper",
    "session_secret",
]

SESSION_COOKIE = "saga_session"
UI_PATH = "/ui"
SECRET_FILE = "ui-session-secret"
"""The development secret's file in the run directory."""
_MIN_SECRET = 32
_SALT = "saga-ui-session"


def session_secret(settings: Settings) -> str:
    """``SAGA_UI_SESSION_SECRET``; in development, unset, the run directory's own (made once).

    Raises:
        ConfigurationError: the secret is shorter than 32 characters, or missing in
            production.
    """
    if settings.ui_session_secret is not None:
        secret = settings.ui_session_secret.get_secret_value()
        if len(secret) < _MIN_SECRET:
            raise ConfigurationError(
                f"SAGA_UI_SESSION_SECRET has {len(secret)} characters: use at least "
                f"{_MIN_SECRET} random ones (python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return secret
    if settings.mode == "production":
        raise ConfigurationError(
            "SAGA_UI_SESSION_SECRET is missing: in production (SAGA_MODE=production) set it "
            "to at least 32 random characters, the same for every copy of the API "
            "(see docs/ui.md)"
        )
    return _development_secret(settings.run_dir)


def _development_secret(run_dir: Path) -> str:
    """The run directory's session secret, made once (readable by its owner only)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / SECRET_FILE
    with contextlib.suppress(FileExistsError):
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(secrets.token_urlsafe(32) + "\n")
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < _MIN_SECRET:
        raise OSError(f"{path} is shorter than {_MIN_SECRET} characters: delete it and restart")
    return secret


@dataclass(frozen=True)
class Session:
    """A signed-in browser: the hash of its token and the nonce its forms' CSRF token is of."""

    token_sha256: str
    nonce: str


class SessionKeeper:
    """Issues, reads and clears the session cookie; makes and checks CSRF tokens."""

    def __init__(self, secret: str, *, max_age_seconds: int, secure: bool) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt=_SALT)
        self.notices = URLSafeTimedSerializer(secret, salt=f"{_SALT}-notice")
        """Signs the one-time notice a page shows after a form (what was done, or refused)."""
        self._csrf_key = hashlib.sha256(f"csrf:{secret}".encode()).digest()
        self.max_age_seconds = max_age_seconds
        self.secure = secure

    @classmethod
    def from_settings(cls, settings: Settings) -> "SessionKeeper":
        """The keeper of this API's sessions.

        ``Secure`` cookies are only sent over https: browsers drop them on plain http (the
        development API on 127.0.0.1), so the flag is set when the API is reached over https
        or runs in production (behind a TLS proxy), where a plain-http cookie would leak.

        Raises:
            ConfigurationError: see :func:`session_secret`.
        """
        return cls(
            session_secret(settings),
            max_age_seconds=settings.ui_session_hours * 3600,
            secure=settings.api_url.startswith("https://") or settings.mode == "production",
        )

    def issue(self, response: Response, token: str) -> Session:
        """Sign ``token``'s browser in: a fresh session in the response's cookie."""
        session = Session(token_sha256(token), secrets.token_urlsafe(16))
        value = self._serializer.dumps([session.token_sha256, session.nonce])
        response.set_cookie(
            SESSION_COOKIE,
            value,
            max_age=self.max_age_seconds,
            path=UI_PATH,
            secure=self.secure,
            httponly=True,
            samesite="strict",
        )
        return session

    def read(self, cookie: str | None) -> Session | None:
        """The session of a cookie, or None when it is missing, forged or too old."""
        if not cookie:
            return None
        try:
            value = self._serializer.loads(cookie, max_age=self.max_age_seconds)
        except BadSignature:  # also SignatureExpired
            return None
        if (
            not isinstance(value, list)
            or len(value) != 2
            or not all(isinstance(part, str) for part in value)
        ):
            return None
        return Session(token_sha256=value[0], nonce=value[1])

    def clear(self, response: Response) -> None:
        """Sign the browser out."""
        response.delete_cookie(
            SESSION_COOKIE, path=UI_PATH, secure=self.secure, httponly=True, samesite="strict"
        )

    def csrf_token(self, session: Session) -> str:
        """The value every form of this session carries in its ``csrf`` field."""
        return hmac.new(self._csrf_key, session.nonce.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, session: Session, sent: str | None) -> bool:
        """Whether a form's ``csrf`` field is this session's."""
        return sent is not None and hmac.compare_digest(self.csrf_token(session), sent)
