"""Fixtures of both tiers. None starts a server: those are in ``tests/system/conftest.py``."""

from pathlib import Path

import pytest

from tests.support.cli import own_stack_env


@pytest.fixture
def stack_env(tmp_path: Path) -> dict[str, str]:
    """Settings for a stack of its own: a fresh run directory and free ports for everything."""
    return own_stack_env(tmp_path / "run")
