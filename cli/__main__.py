"""``python -m cli``: the `saga` command."""

from cli.main import run

run()
