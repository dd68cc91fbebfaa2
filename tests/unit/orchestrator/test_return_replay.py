"""Replay: every committed history of the return saga replays against the current ReturnSaga.

The histories in ``histories/returns/`` are written by the path tests of
``tests/system/orchestrator/test_return_saga.py``: re-record them with
``SAGA_RECORD_HISTORIES=1 pytest tests/system/orchestrator -k return_saga`` (review the diff
before committing). The return saga wrote the lean history from its first run
(``SagaDefinition.lean_from_start``), so its histories carry no ``saga-lean-history`` marker.
"""

import base64
import dataclasses
import json
from pathlib import Path

from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner
from temporalio.workflow import NondeterminismError

from contracts.activities import (
    AUTHORIZE_RETURN,
    COMPLETE_RETURN,
    EXPIRE_RETURN,
    ReturnSagaInput,
    ReturnSagaResult,
)
from ops.replay import load_history_files, replay_files
from orchestrator.saga import RESOLVED_PAST_PIVOT_PATCH, SagaDefinition
from orchestrator.workflows import RETURN_SAGA, ReturnSaga, ReturnSteps
from tests.support.saga_harness import HISTORIES

RETURNS = HISTORIES / "returns"
PATHS = {
    "completed",
    "rejected",
    "parcel_deadline",
    "foreign_parcel",
    "refund_resolved",
    "refund_retry_now",
    "workflow_cancel",
    "cancel_after_parcel",
}


def _refund_before_restock() -> SagaDefinition:
    steps = list(RETURN_SAGA.steps)
    names = [step.name for step in steps]
    restock, refund = names.index(ReturnSteps.RESTOCK), names.index(ReturnSteps.REFUND)
    steps[restock], steps[refund] = steps[refund], steps[restock]
    return dataclasses.replace(RETURN_SAGA, steps=steps)


@workflow.defn(name="ReturnSaga")
class ReorderedReturnSaga(ReturnSaga):
    """A deliberately incompatible change: refund before restocking."""

    definition = _refund_before_restock()

    @workflow.run
    async def run(self, saga_input: ReturnSagaInput) -> ReturnSagaResult:
        return await super().run(saga_input)


@workflow.defn(name="ReturnSaga")
class PatchedLeanReturnSaga(ReturnSaga):
    """The return saga asking ``workflow.patched`` for its lean history, as older sagas do."""

    definition = dataclasses.replace(RETURN_SAGA, lean_from_start=False)

    @workflow.run
    async def run(self, saga_input: ReturnSagaInput) -> ReturnSagaResult:
        return await super().run(saga_input)


def _replayer(workflow_class: type) -> Replayer:
    return Replayer(
        workflows=[workflow_class],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def _history(name: str) -> WorkflowHistory:
    return load_history_files([RETURNS / f"{name}.json"])[0]


def _events(path: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["events"]
    return events


def _markers(path: Path, marker: str, details: str) -> list[dict[str, object]]:
    found = []
    for event in _events(path):
        attributes = event.get("markerRecordedEventAttributes")
        if not isinstance(attributes, dict) or attributes["markerName"] != marker:
            continue
        payload = attributes["details"][details]["payloads"][0]["data"]
        found.append(json.loads(base64.b64decode(payload)))
    return found


def _scheduled_activities(path: Path) -> list[str]:
    return [
        attributes["activityType"]["name"]
        for event in _events(path)
        if isinstance(attributes := event.get("activityTaskScheduledEventAttributes"), dict)
    ]


def _upserts_per_workflow_task(path: Path) -> list[int]:
    counts: dict[object, int] = {}
    for event in _events(path):
        attributes = event.get("upsertWorkflowSearchAttributesEventAttributes")
        if not isinstance(attributes, dict):
            continue
        if "TemporalChangeVersion" in attributes["searchAttributes"]["indexedFields"]:
            continue  # written by the SDK beside a patch marker
        task = attributes["workflowTaskCompletedEventId"]
        counts[task] = counts.get(task, 0) + 1
    return list(counts.values())


async def test_every_return_path_has_a_committed_history() -> None:
    assert {path.stem for path in RETURNS.glob("*.json")} == PATHS


async def test_every_return_history_replays_against_the_current_code() -> None:
    """By default ``replay_files`` (``saga replay``) knows both sagas."""
    report = await replay_files(sorted(RETURNS.glob("*.json")))

    assert report.failures == ()
    assert {outcome.workflow_id for outcome in report.outcomes} == PATHS


async def test_reordering_the_return_steps_is_caught_as_nondeterminism() -> None:
    result = await _replayer(ReorderedReturnSaga).replay_workflow(
        _history("completed"), raise_on_replay_failure=False
    )

    assert isinstance(result.replay_failure, NondeterminismError)


async def test_a_saga_lean_from_start_cannot_go_back_to_the_patch() -> None:
    """The histories have no lean-history marker: asked for it, the saga would replay them
    the old way (an upsert per transition) and break."""
    result = await _replayer(PatchedLeanReturnSaga).replay_workflow(
        _history("completed"), raise_on_replay_failure=False
    )

    assert isinstance(result.replay_failure, NondeterminismError)


async def test_return_histories_are_lean_without_a_patch_marker() -> None:
    """No patch marker but on the path that needs one (an operator settling a step past the
    pivot); the order service's steps run locally, never scheduled; one upsert at most per
    workflow task."""
    own_steps = {AUTHORIZE_RETURN, EXPIRE_RETURN, COMPLETE_RETURN}
    for name in sorted(PATHS):
        path = RETURNS / f"{name}.json"
        patches = [data["id"] for data in _markers(path, "core_patch", "patch-data")]
        assert patches == ([RESOLVED_PAST_PIVOT_PATCH] if name == "refund_resolved" else []), name
        assert not own_steps & set(_scheduled_activities(path)), name
        local = [data["activity_type"] for data in _markers(path, "core_local_activity", "data")]
        assert local[0] == AUTHORIZE_RETURN, name
        assert max(_upserts_per_workflow_task(path)) == 1, name
