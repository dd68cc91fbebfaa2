"""Helpers the tests share: imported as ``tests.support.<module>``, fixtures of none."""

from pathlib import Path

REPO = Path(__file__).parents[2]
"""The repository's top folder, wherever a test module stands below ``tests/``."""
