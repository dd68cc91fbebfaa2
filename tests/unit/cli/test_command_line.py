"""The `saga` command keeps its names and flags: scripts and runbooks call them.

``_BEFORE_THE_LAYOUT`` is every command and option of the command line as it stood before the
layout change of issue 13 (read off ``orchestrator.cli`` at 1db1a20); a command or option may
be added, never dropped or renamed without a deliberate change here.
"""

import argparse

from cli.main import _parser

_BEFORE_THE_LAYOUT = {
    "-h|--help",
    "audit --json",
    "audit --offline",
    "audit --order",
    "audit --since",
    "audit --wait",
    "audit -h|--help",
    "bench --bare-dispatch-wait",
    "bench --bare-orders",
    "bench --concurrency",
    "bench --json",
    "bench --orders",
    "bench --profile",
    "bench --records",
    "bench --report-dir",
    "bench --skip-bare",
    "bench --skip-kafka-tools",
    "bench --skip-publishing",
    "bench -h|--help",
    "cancel --by",
    "cancel --json",
    "cancel --reason",
    "cancel -h|--help",
    "cancel order_id",
    "chaos --concurrency",
    "chaos --json",
    "chaos --kill",
    "chaos --orders",
    "chaos --pause",
    "chaos --pause-seconds",
    "chaos --report-dir",
    "chaos --seed",
    "chaos --timeout",
    "chaos -h|--help",
    "config --json",
    "config -h|--help",
    "demo --country",
    "demo --payment-token",
    "demo -h|--help",
    "dlq -h|--help",
    "dlq list --json",
    "dlq list --topic",
    "dlq list -h|--help",
    "dlq redrive --all",
    "dlq redrive --topic",
    "dlq redrive -h|--help",
    "dlq redrive positions",
    "down -h|--help",
    "fetch -h|--help",
    "list --customer",
    "list --json",
    "list --newer-than",
    "list --older-than",
    "list --page-size",
    "list --page-token",
    "list --status",
    "list --step",
    "list -h|--help",
    "logs -f|--follow",
    "logs -h|--help",
    "logs -n|--lines",
    "logs name",
    "projections -h|--help",
    "projections rebuild --json",
    "projections rebuild -h|--help",
    "ps --json",
    "ps -h|--help",
    "repair --apply",
    "repair --bulk",
    "repair --json",
    "repair --limit",
    "repair --older-than",
    "repair --operator",
    "repair --rate",
    "repair --reason",
    "repair --resolve",
    "repair --retry-now",
    "repair --step",
    "repair -h|--help",
    "repair order_id",
    "replay --json",
    "replay --limit",
    "replay -h|--help",
    "replay files",
    "show --json",
    "show -f|--follow",
    "show -h|--help",
    "show order_id",
    "soak --concurrency",
    "soak --json",
    "soak --orders",
    "soak --report-dir",
    "soak -h|--help",
    "start --json",
    "start -h|--help",
    "start file",
    "stuck --json",
    "stuck --older-than",
    "stuck --step",
    "stuck -h|--help",
    "token -h|--help",
    "up --scale",
    "up -h|--help",
}


def _options(parser: argparse.ArgumentParser, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, command in action.choices.items():
                found |= _options(command, f"{prefix}{name} ")
        else:
            found.add(prefix + "|".join(action.option_strings or [action.dest]))
    return found


def test_every_command_and_option_of_before_is_still_there() -> None:
    missing = _BEFORE_THE_LAYOUT - _options(_parser())
    assert not missing, f"commands or options gone: {sorted(missing)}"


def test_what_was_added_since_is_known() -> None:
    assert _options(_parser()) - _BEFORE_THE_LAYOUT == {
        "config --markdown",
        "up --topology",
        "chaos --topology",
        "chaos --brokers-down",
        "chaos --outage-seconds",
        "chaos --returns",
        "bench --rate",
        "bench --paced-orders",
        "schemas -h|--help",
        "schemas list -h|--help",
        "schemas list --json",
        "schemas check -h|--help",
        "schemas check --json",
        "schemas check files",
        "schemas register -h|--help",
        "schemas register --json",
        "schemas register files",
        "demo --return",
        "list --type",
        "stuck --type",
        "repair --type",
        "return -h|--help",
        "return start -h|--help",
        "return start --order",
        "return start --json",
        "return start file",
        "return show -h|--help",
        "return show -f|--follow",
        "return show --json",
        "return show return_id",
        "ops-log -h|--help",
        "ops-log --order",
        "ops-log --since",
        "ops-log --type",
        "ops-log --page-size",
        "ops-log --page-token",
        "ops-log --json",
    }
