"""The web pages' session cookie, CSRF tokens, secret and sign-in redirects, without a stack.
The pages in a browser: ``tests/system/ui/test_saga_pages.py``."""

import stat
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from starlette.responses import Response

from infra.config.api_tokens import Scope, token_sha256
from infra.config.settings import ConfigurationError, Settings
from orchestrator.api.auth import Principal, TokenStore
from orchestrator.api.ui import SESSION_COOKIE, SessionKeeper, session_secret
from orchestrator.api.ui.pages import _next_path
from orchestrator.api.ui.session import SECRET_FILE

_SECRET = "s" * 40
_TOKEN = "a-token-of-the-api-0123456789"


def _keeper(*, secure: bool = False) -> SessionKeeper:
    return SessionKeeper(_SECRET, max_age_seconds=8 * 3600, secure=secure)


def _cookie(response: Response) -> tuple[str, str]:
    header = response.headers["set-cookie"]
    value = header.split(";", 1)[0].removeprefix(f"{SESSION_COOKIE}=")
    return value, header


def test_the_cookie_holds_the_tokens_hash_signed_http_only_and_strict() -> None:
    keeper = _keeper()
    response = Response()
    issued = keeper.issue(response, _TOKEN)
    value, header = _cookie(response)

    assert _TOKEN not in value
    assert issued.token_sha256 == token_sha256(_TOKEN)
    assert keeper.read(value) == issued
    attributes = [part.strip().lower() for part in header.split(";")]
    assert "httponly" in attributes
    assert "samesite=strict" in attributes
    assert "path=/ui" in attributes
    assert f"max-age={8 * 3600}" in attributes
    assert "secure" not in attributes
    assert "secure" in _cookie_attributes(_keeper(secure=True))


def _cookie_attributes(keeper: SessionKeeper) -> list[str]:
    response = Response()
    keeper.issue(response, _TOKEN)
    return [part.strip().lower() for part in _cookie(response)[1].split(";")]


def test_a_forged_tampered_or_expired_cookie_is_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    keeper = _keeper()
    response = Response()
    keeper.issue(response, _TOKEN)
    value, _ = _cookie(response)

    assert keeper.read(None) is None
    assert keeper.read("") is None
    assert keeper.read(value[:-2] + ("AA" if not value.endswith("AA") else "BB")) is None
    other = SessionKeeper("o" * 40, max_age_seconds=3600, secure=False)
    assert other.read(value) is None
    later = time.time() + 8 * 3600 + 5
    monkeypatch.setattr("itsdangerous.timed.time.time", lambda: later)
    assert keeper.read(value) is None


def test_the_csrf_token_belongs_to_its_session() -> None:
    keeper = _keeper()
    mine = keeper.issue(Response(), _TOKEN)
    theirs = keeper.issue(Response(), _TOKEN)  # the same token signed in twice: two sessions

    assert keeper.csrf_ok(mine, keeper.csrf_token(mine))
    assert not keeper.csrf_ok(mine, keeper.csrf_token(theirs))
    assert not keeper.csrf_ok(mine, None)
    assert not keeper.csrf_ok(mine, "")
    assert _keeper().csrf_token(mine) == keeper.csrf_token(mine)  # same secret, any copy
    other = SessionKeeper("o" * 40, max_age_seconds=3600, secure=False)
    assert other.csrf_token(mine) != keeper.csrf_token(mine)


def test_development_makes_the_secret_once_in_the_run_directory(tmp_path: Path) -> None:
    settings = Settings(run_dir=tmp_path)
    first = session_secret(settings)
    assert session_secret(settings) == first
    assert len(first) >= 32
    assert stat.S_IMODE((tmp_path / SECRET_FILE).stat().st_mode) == 0o600
    assert SessionKeeper.from_settings(settings).secure is False


def test_production_needs_a_secret_of_32_characters_and_secure_cookies(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="SAGA_UI_SESSION_SECRET is missing"):
        session_secret(Settings(run_dir=tmp_path, mode="production"))
    assert not (tmp_path / SECRET_FILE).exists()
    with pytest.raises(ConfigurationError, match="at least 32"):
        session_secret(Settings(run_dir=tmp_path, ui_session_secret=SecretStr("short")))
    settings = Settings(run_dir=tmp_path, mode="production", ui_session_secret=SecretStr(_SECRET))
    assert session_secret(settings) == _SECRET
    assert SessionKeeper.from_settings(settings).secure is True


def test_the_store_finds_a_principal_by_the_hash_the_cookie_holds() -> None:
    ops = Principal("ops", frozenset({Scope.SAGAS_READ}))
    store = TokenStore([(token_sha256(_TOKEN), ops)])
    assert store.principal_by_sha256(token_sha256(_TOKEN)) == ops
    assert store.principal_by_sha256(token_sha256(_TOKEN + "x")) is None
    assert store.principal_by_sha256(_TOKEN) is None  # the token itself is not its hash


@pytest.mark.parametrize(
    ("asked", "goes_to"),
    [
        ("/ui/stuck", "/ui/stuck"),
        ("/ui/map/return?window=7d", "/ui/map/return?window=7d"),
        (None, "/ui/map/order"),
        ("", "/ui/map/order"),
        ("https://elsewhere.example/ui/", "/ui/map/order"),
        ("//elsewhere.example/ui/", "/ui/map/order"),
        ("/sagas/stuck", "/ui/map/order"),
        ("/ui", "/ui/map/order"),
    ],
)
def test_signing_in_goes_on_only_to_a_page_of_the_ui(asked: str | None, goes_to: str) -> None:
    assert _next_path(asked) == goes_to
