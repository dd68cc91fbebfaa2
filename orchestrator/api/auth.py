"""Who calls the API and what they may do: bearer tokens with scopes.

Each route asks for one scope (``Depends(require_scope(Scope.SAGAS_READ))``): no token, or
one the API does not know, is a 401 with ``WWW-Authenticate: Bearer``; a known token without
the scope is a 403 naming it. The probes and ``/metrics`` ask for none.

The tokens are ``SAGA_API_TOKENS`` (their SHA-256, see :mod:`infra.config.api_tokens`) and, in
development mode only, the run directory's development token, which has every scope.
"""

import hmac
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from infra.config.api_tokens import (
    Scope,
    ensure_dev_token,
    parse_api_tokens,
    production_problem,
    token_sha256,
)
from infra.config.settings import ConfigurationError, Settings

__all__ = ["DEVELOPMENT_PRINCIPAL", "Principal", "Scope", "TokenStore", "require_scope"]

DEVELOPMENT_PRINCIPAL = "development"
"""The name the development token acts under (in saga notes and log lines)."""

log = logging.getLogger(__name__)

_bearer = HTTPBearer(
    auto_error=False,  # this module answers, with a detail that says what to do
    description="A token of SAGA_API_TOKENS; in development, `saga token` prints one.",
)


@dataclass(frozen=True)
class Principal:
    """Who sent a request (the token's name) and what it may do."""

    name: str
    scopes: frozenset[Scope]


class TokenStore:
    """The tokens the API accepts, by the SHA-256 of each."""

    def __init__(self, principals: Iterable[tuple[str, Principal]]) -> None:
        self._principals = list(principals)

    @classmethod
    def from_settings(cls, settings: Settings) -> "TokenStore":
        """``SAGA_API_TOKENS``, plus the run directory's development token in development.

        Raises:
            ConfigurationError: in production, no token or a placeholder one.
        """
        if settings.mode == "production":
            problem = production_problem(settings.api_tokens)
            if problem is not None:
                raise ConfigurationError(problem)
        entries = parse_api_tokens(settings.api_tokens) if settings.api_tokens else []
        principals = [
            (entry.sha256, Principal(entry.name, frozenset(entry.scopes))) for entry in entries
        ]
        if settings.mode == "development":
            dev_token = ensure_dev_token(settings.run_dir)
            principals.append(
                (token_sha256(dev_token), Principal(DEVELOPMENT_PRINCIPAL, frozenset(Scope)))
            )
        return cls(principals)

    def principal(self, token: str) -> Principal | None:
        """The principal of ``token``, or None when no token of the store is ``token``."""
        return self.principal_by_sha256(token_sha256(token))

    def principal_by_sha256(self, digest: str) -> Principal | None:
        """The principal of the token whose SHA-256 (hex) is ``digest``, or None.

        The web pages' session cookie holds the hash, never the token: each request looks
        it up again, so a token removed from the store stops working at once.
        """
        found = None
        for sha256, principal in self._principals:
            # Every hash is compared, in constant time: timing tells nothing of the others.
            if hmac.compare_digest(sha256, digest):
                found = principal
        return found


def _unauthorized(detail: str, challenge: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": challenge}
    )


def require_scope(scope: Scope) -> Callable[..., Awaitable[Principal]]:
    """A dependency that lets through requests whose bearer token has ``scope``, and hands
    the route the request's :class:`Principal`."""

    async def authorized(
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> Principal:
        if credentials is None:
            raise _unauthorized(
                "no bearer token: send `Authorization: Bearer <token>` (a token of "
                "SAGA_API_TOKENS; in development `saga token` prints one)",
                "Bearer",
            )
        store: TokenStore = request.app.state.tokens
        principal = store.principal(credentials.credentials)
        if principal is None:
            raise _unauthorized(
                "the bearer token is not one this API accepts: check SAGA_API_TOKEN, or run "
                "`saga token` for the development token of this run directory",
                'Bearer error="invalid_token"',
            )
        if scope not in principal.scopes:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                detail=f"the token {principal.name!r} lacks the scope {scope.value!r} that "
                f"{request.method} {request.url.path} needs: use a token that has it",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'},
            )
        if request.method == "POST":
            log.info(
                "%s %s by %s",
                request.method,
                request.url.path,
                principal.name,
                extra={"principal": principal.name, "scope": scope.value},
            )
        return principal

    return authorized
