"""The `saga` command: every subcommand, its output (tables for people, ``--json`` for
scripts) and the API client."""

from cli.main import run

__all__ = ["run"]
