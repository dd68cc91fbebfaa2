"""What the `saga` commands print: aligned tables for people, JSON for scripts (``--json``)."""

import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

__all__ = ["print_json", "table"]


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
