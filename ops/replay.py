"""Replay saga histories against the current workflow code, to catch non-determinism.

A history recorded by an older version of a saga (``OrderSaga``, ``ReturnSaga``) must
replay without error against
the code about to be deployed; an error means running sagas would break (guard the change
with ``workflow.patched``). Histories come from JSON files (``fetch_history().to_json()``,
the Web UI's or the CLI's export) or straight from a Temporal server.
"""

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.worker import Replayer

from contracts.activities import ORDER_SAGA_WORKFLOW, RETURN_SAGA_WORKFLOW
from orchestrator.workflows import OrderSaga, ReturnSaga

__all__ = [
    "SAGAS",
    "ReplayOutcome",
    "ReplayReport",
    "load_history_files",
    "replay_files",
    "replay_histories",
    "replay_recent",
]


SAGAS: tuple[type, ...] = (OrderSaga, ReturnSaga)
"""Every saga workflow: a history of any of them replays against the current code."""

_SAGA_TYPES = " OR ".join(
    f'WorkflowType="{name}"' for name in (ORDER_SAGA_WORKFLOW, RETURN_SAGA_WORKFLOW)
)


@dataclass(frozen=True)
class ReplayOutcome:
    """One history replayed: ``error`` is ``None`` when it replayed cleanly."""

    workflow_id: str
    run_id: str
    error: str | None

    @property
    def ok(self) -> bool:
        """Whether the current code replays this history without error."""
        return self.error is None


@dataclass(frozen=True)
class ReplayReport:
    """Every history replayed, in the order they were given."""

    outcomes: tuple[ReplayOutcome, ...]

    @property
    def ok(self) -> bool:
        """Whether every history replayed cleanly (true for an empty report)."""
        return all(outcome.ok for outcome in self.outcomes)

    @property
    def failures(self) -> tuple[ReplayOutcome, ...]:
        """The histories that did not replay."""
        return tuple(outcome for outcome in self.outcomes if not outcome.ok)

    def as_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data: ``ok``, counts and one entry per history."""
        return {
            "ok": self.ok,
            "replayed": len(self.outcomes),
            "failed": len(self.failures),
            "workflows": [
                {
                    "workflow_id": outcome.workflow_id,
                    "run_id": outcome.run_id,
                    "ok": outcome.ok,
                    "error": outcome.error,
                }
                for outcome in self.outcomes
            ],
        }

    def summary(self) -> str:
        """One line per history (``ok`` or its error), then a total line."""
        lines = [
            f"{'ok   ' if outcome.ok else 'ERROR'} {outcome.workflow_id}"
            + ("" if outcome.ok else f": {outcome.error}")
            for outcome in self.outcomes
        ]
        if not self.outcomes:
            lines.append("no saga histories to replay")
        lines.append(f"{len(self.outcomes)} replayed, {len(self.failures)} failed")
        return "\n".join(lines)


async def replay_histories(
    histories: Iterable[WorkflowHistory],
    *,
    workflows: Sequence[type] = SAGAS,
    data_converter: DataConverter = pydantic_data_converter,
) -> ReplayReport:
    """Replay ``histories`` against ``workflows`` (the current sagas by default).

    ``data_converter`` reads their payloads: the stack's
    (:func:`infra.config.payload_codec.data_converter`) for histories written encrypted.
    """

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    return await _replay(each(), workflows, data_converter)


async def replay_files(
    paths: Iterable[str | Path],
    *,
    workflows: Sequence[type] = SAGAS,
    data_converter: DataConverter = pydantic_data_converter,
) -> ReplayReport:
    """Replay JSON history files; each one's workflow id is its file name without ``.json``.

    Raises:
        OSError: a file cannot be read.
        ValueError: a file is not a JSON history.
    """
    histories = await asyncio.to_thread(load_history_files, paths)
    return await replay_histories(histories, workflows=workflows, data_converter=data_converter)


def load_history_files(paths: Iterable[str | Path]) -> list[WorkflowHistory]:
    """Read JSON history files; each one's workflow id is its file name without ``.json``."""
    return [
        WorkflowHistory.from_json(Path(path).stem, Path(path).read_text(encoding="utf-8"))
        for path in paths
    ]


async def replay_recent(client: Client, limit: int = 50) -> ReplayReport:
    """Replay the ``limit`` most recent saga runs (orders and returns) that ``client`` can
    list, reading their payloads with the client's data converter."""
    executions = client.list_workflows(_SAGA_TYPES, limit=limit)
    return await _replay(executions.map_histories(), SAGAS, client.data_converter)


async def _replay(
    histories: AsyncIterator[WorkflowHistory],
    workflows: Sequence[type],
    data_converter: DataConverter,
) -> ReplayReport:
    outcomes: list[ReplayOutcome] = []
    replayer = Replayer(workflows=list(workflows), data_converter=data_converter)
    async with replayer.workflow_replay_iterator(histories) as results:
        async for result in results:
            failure = result.replay_failure
            outcomes.append(
                ReplayOutcome(
                    workflow_id=result.history.workflow_id,
                    run_id=result.history.run_id,
                    error=None if failure is None else f"{type(failure).__name__}: {failure}",
                )
            )
    return ReplayReport(tuple(outcomes))
