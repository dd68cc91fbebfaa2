"""What the `saga` commands print: aligned tables for people, JSON for scripts (``--json``)."""

import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["fail", "print_json", "say", "table"]


def table(rows: Sequence[Sequence[object]], headers: Sequence[str]) -> str:
    """``rows`` under ``headers``, each column as wide as its widest cell."""
    widths = [
        max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)
    ]
    lines = [headers, *rows]
    return "\n".join(
        "  ".join(str(cell).ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in lines
    )


def print_json(answer: BaseModel | Sequence[BaseModel] | Any) -> int:
    """Print ``answer`` (a model, a list of models, or plain JSON data) indented; return 0."""
    if isinstance(answer, BaseModel):
        data: Any = answer.model_dump(mode="json")
    elif isinstance(answer, list | tuple) and all(isinstance(item, BaseModel) for item in answer):
        data = [item.model_dump(mode="json") for item in answer]
    else:
        data = answer
    print(json.dumps(data, indent=2))
    return 0


def say(line: str) -> None:
    """Progress for people, on stderr: stdout carries only the command's answer."""
    print(line, file=sys.stderr)


def fail(problem: object, code: int) -> int:
    """Print ``saga: <problem>`` on stderr and return the exit code ``code``."""
    print(f"saga: {problem}", file=sys.stderr)
    return code
