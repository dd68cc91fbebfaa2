"""Bearer tokens without a running stack: the development token and the configured ones, the
`SAGA_API_TOKENS` checks and the production refusals. The tokens and scopes on the real API:
``tests/system/orchestrator/test_auth.py``."""

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.config.api_tokens import Scope, ensure_dev_token, token_sha256
from infra.config.settings import ConfigurationError, Settings, api_headers, load_settings
from infra.engines.processes import free_ports
from orchestrator.api.auth import DEVELOPMENT_PRINCIPAL, TokenStore
from tests.support.cli import without_settings


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_development_token_has_every_scope_and_production_ignores_it(
    tmp_path: Path,
) -> None:
    dev_token = ensure_dev_token(tmp_path)
    assert ensure_dev_token(tmp_path) == dev_token  # made once
    assert (tmp_path / "dev-token").stat().st_mode & 0o777 == 0o600
    ops = "an-ops-token-" + uuid.uuid4().hex
    tokens = json.dumps(
        [{"name": "ops", "sha256": token_sha256(ops), "scopes": ["sagas:read", "sagas:operate"]}]
    )
    development = TokenStore.from_settings(Settings(run_dir=tmp_path, api_tokens=tokens))
    principal = development.principal(dev_token)
    assert principal is not None
    assert principal.name == DEVELOPMENT_PRINCIPAL
    assert principal.scopes == frozenset(Scope)
    production = TokenStore.from_settings(
        Settings(run_dir=tmp_path, api_tokens=tokens, mode="production")
    )
    assert production.principal(dev_token) is None
    ops_principal = production.principal(ops)
    assert ops_principal is not None
    assert ops_principal.scopes == {Scope.SAGAS_READ, Scope.SAGAS_OPERATE}
    assert production.principal(ops + "x") is None


def test_the_projects_clients_send_the_configured_token_else_the_development_one(
    tmp_path: Path,
) -> None:
    assert api_headers(Settings(run_dir=tmp_path)) == {}
    dev_token = ensure_dev_token(tmp_path)
    assert api_headers(Settings(run_dir=tmp_path)) == _bearer(dev_token)
    mine = Settings(run_dir=tmp_path, api_token=SecretStr("mine"))
    assert api_headers(mine) == _bearer("mine")
    assert api_headers(Settings(run_dir=tmp_path, mode="production")) == {}


@pytest.mark.parametrize(
    ("tokens", "named"),
    [
        ("not json", "SAGA_API_TOKENS"),
        ('{"name": "ops"}', "SAGA_API_TOKENS"),
        ('[{"name": "ops", "sha256": "abc", "scopes": ["sagas:read"]}]', "sha256"),
        (f'[{{"name": "ops", "sha256": "{"a" * 64}", "scopes": ["sagas:delete"]}}]', "scopes"),
        (f'[{{"name": "ops", "sha256": "{"a" * 64}", "scopes": []}}]', "scopes"),
    ],
)
def test_unusable_api_tokens_are_refused_naming_the_setting(tokens: str, named: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        load_settings(api_tokens=tokens)
    assert "SAGA_API_TOKENS" in str(refused.value)
    assert named in str(refused.value)


def _api_in_production(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m orchestrator.api`` in production mode, with no Kafka or Temporal to reach."""
    api_port, temporal_port = free_ports(2)
    clean = without_settings()
    clean.update(
        SAGA_MODE="production",
        SAGA_RUN_DIR=str(tmp_path),
        SAGA_API_PORT=str(api_port),
        SAGA_TEMPORAL_ADDRESS=f"127.0.0.1:{temporal_port}",
        SAGA_STARTUP_TIMEOUT_SECONDS="1",
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.api"],
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("env", "said"),
    [
        ({}, "SAGA_API_TOKENS is missing or empty"),
        ({"SAGA_API_TOKENS": "[]"}, "SAGA_API_TOKENS is missing or empty"),
        (
            {
                "SAGA_API_TOKENS": json.dumps(
                    [{"name": "ops", "sha256": token_sha256("changeme"), "scopes": ["sagas:read"]}]
                )
            },
            "placeholder",
        ),
        (
            {
                "SAGA_API_TOKENS": json.dumps(
                    [{"name": "ops", "sha256": "0" * 64, "scopes": ["sagas:read"]}]
                )
            },
            "placeholder",
        ),
        (
            {"SAGA_API_TOKENS": '[{"name": "ops", "sha256": "123", "scopes": ["sagas:read"]}]'},
            "SAGA_API_TOKENS",
        ),
    ],
)
def test_production_refuses_to_start_without_real_tokens(
    tmp_path: Path, env: dict[str, str], said: str
) -> None:
    ensure_dev_token(tmp_path)  # a development token is no way out
    api = _api_in_production(tmp_path, **env)
    assert api.returncode == 2, api.stderr
    message = api.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "SAGA_API_TOKENS" in message
    assert said in message
