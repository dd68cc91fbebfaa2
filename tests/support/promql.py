"""The Grafana dashboard in ``infra/grafana`` and a reader of the PromQL its panels query."""

import json
import re
from typing import Any

from tests.support import REPO

DASHBOARD = REPO / "infra" / "grafana" / "saga-dashboard.json"

AGGREGATIONS = frozenset(
    {"sum", "min", "max", "avg", "count", "topk", "bottomk", "quantile", "group", "stddev"}
)
FUNCTIONS = AGGREGATIONS | frozenset(
    {
        "rate", "irate", "increase", "delta", "idelta", "deriv", "histogram_quantile",
        "abs", "ceil", "floor", "round", "clamp_min", "clamp_max", "vector", "scalar",
        "time", "timestamp", "sum_over_time", "avg_over_time", "max_over_time",
        "min_over_time", "last_over_time", "absent", "label_replace",
    }
)  # fmt: skip
KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset"})
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
    |(?P<string>"(?:[^"\\]|\\.)*")
    |(?P<range>\[(?:\d+[smhdwy])+\]|\[\$\w+\])
    |(?P<number>\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)
    |(?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
    |(?P<matcher>=~|!~|!=|=)
    |(?P<operator>==|>=|<=|[-+*/%^<>])
    |(?P<punct>[(){},])
    """,
    re.VERBOSE,
)


class PromQLError(ValueError):
    """An expression that does not parse."""


def _tokens(expr: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(expr):
        match = _TOKEN.match(expr, position)
        if match is None:
            raise PromQLError(f"cannot read {expr[position:]!r} in {expr!r}")
        position = match.end()
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append((kind, match.group()))
    return tokens


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects.

    Parses far enough to tell them apart from functions, aggregations, grouping labels and
    label matchers, and fails on unbalanced brackets, unknown functions, malformed matchers
    and a range that follows no selector.

    Raises:
        PromQLError: the expression does not parse.
    """
    tokens = _tokens(expr)
    names: set[str] = set()
    depth, index = 0, 0
    previous: tuple[str, str] | None = None
    while index < len(tokens):
        kind, text = tokens[index]
        following = tokens[index + 1] if index + 1 < len(tokens) else ("", "")
        if kind == "name" and text in GROUPING:
            index = _labels_in_parentheses(tokens, index + 1, expr)
            previous = ("punct", ")")
            continue
        if kind == "name" and following[0] == "name" and following[1] in GROUPING:
            if text not in AGGREGATIONS:
                raise PromQLError(f"{text!r} is not an aggregation in {expr!r}")
        elif kind == "name" and following == ("punct", "("):
            if text not in FUNCTIONS:
                raise PromQLError(f"unknown function {text!r} in {expr!r}")
        elif kind == "name" and text not in KEYWORDS:
            names.add(text)
        elif kind == "punct" and text == "{":
            if previous is None or previous[0] != "name":
                raise PromQLError(f"label matchers without a metric name in {expr!r}")
            index = _matchers(tokens, index + 1, expr)
            previous = ("punct", "}")
            continue
        elif kind == "range" and (previous is None or not _ends_selector(previous)):
            raise PromQLError(f"a range that follows no selector in {expr!r}")
        elif kind == "punct" and text == "(":
            depth += 1
        elif kind == "punct" and text == ")":
            depth -= 1
            if depth < 0:
                raise PromQLError(f"unbalanced ')' in {expr!r}")
        elif kind in ("matcher", "string"):
            raise PromQLError(f"{text!r} out of place in {expr!r}")
        previous = (kind, text)
        index += 1
    if depth:
        raise PromQLError(f"unbalanced '(' in {expr!r}")
    return names


def _ends_selector(token: tuple[str, str]) -> bool:
    return token[0] == "name" or token == ("punct", "}")


def _labels_in_parentheses(tokens: list[tuple[str, str]], index: int, expr: str) -> int:
    if index >= len(tokens) or tokens[index] != ("punct", "("):
        raise PromQLError(f"grouping without labels in {expr!r}")
    index += 1
    while index < len(tokens) and tokens[index] != ("punct", ")"):
        kind, text = tokens[index]
        if kind != "name" and text != ",":
            raise PromQLError(f"{text!r} is not a label in {expr!r}")
        index += 1
    if index >= len(tokens):
        raise PromQLError(f"unclosed grouping in {expr!r}")
    return index + 1


def _matchers(tokens: list[tuple[str, str]], index: int, expr: str) -> int:
    while index < len(tokens) and tokens[index] != ("punct", "}"):
        window = [kind for kind, _ in tokens[index : index + 3]]
        if window != ["name", "matcher", "string"]:
            raise PromQLError(f"bad label matcher in {expr!r}")
        index += 3
        if index < len(tokens) and tokens[index] == ("punct", ","):
            index += 1
    if index >= len(tokens):
        raise PromQLError(f"unclosed label matchers in {expr!r}")
    return index + 1


def dashboard() -> dict[str, Any]:
    """The dashboard's JSON model."""
    model: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return model


def queries(model: dict[str, Any]) -> list[tuple[str, str]]:
    """Every query of ``model``: (its panel's title, its PromQL expression)."""
    return [
        (panel["title"], target["expr"])
        for panel in model["panels"]
        for target in panel.get("targets", [])
    ]
