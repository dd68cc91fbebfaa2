"""Replay: every committed saga history replays against the current OrderSaga.

The histories in ``histories/`` are written by the path tests of
``tests/system/orchestrator/test_order_saga.py``: re-record them with
``SAGA_RECORD_HISTORIES=1 pytest tests/system/orchestrator -k order_saga`` (review the diff
before committing). Never re-record the older ones: the ``prepatch_*`` histories were
recorded before ``OrderSaga`` gained its outcome memo (``OUTCOME_MEMO_PATCH``), the
``prelean_*`` ones (every path) before the saga library wrote its lean history
(``LEAN_HISTORY_PATCH``).
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
    CANCEL_ORDER,
    COMPLETE_ORDER,
    OPEN_INCIDENT,
    PLACE_ORDER,
    RESOLVE_INCIDENT,
    OrderSagaInput,
    OrderSagaResult,
)
from ops.replay import load_history_files, replay_files
from orchestrator.saga import (
    INCIDENTS_PATCH,
    LEAN_HISTORY_PATCH,
    PARKING_PATCH,
    STUCK_ATTRIBUTE_PATCH,
    SagaDefinition,
)
from orchestrator.workflows import ORDER_SAGA, OrderSaga
from orchestrator.workflows.order_saga import OUTCOME_MEMO_PATCH
from tests.support.saga_harness import HISTORIES

PATHS = {
    "happy_path",
    "payment_declined",
    "stock_unavailable",
    "shipping_failed",
    "dispatch_deadline",
    "customer_cancel",
    "cancel_after_dispatch",
    "duplicate_dispatch",
    "forward_retry",
    "compensation_retried",
    "cancel_during_compensation",
    "workflow_cancel",
    "retry_now",
    "resolve_manually",
    "forward_budget_exhausted",
}
PRE_LEAN = {f"prelean_{path}" for path in PATHS}
PRE_PATCH = {
    "prepatch_happy_path",
    "prepatch_payment_declined",
    "prepatch_dispatch_deadline",
    "prepatch_workflow_cancel",
}
STUCK_PATHS = {"compensation_retried", "retry_now", "resolve_manually", "forward_budget_exhausted"}
"""The paths on which a step gets stuck: recorded again with the ``SagaStuck`` attribute."""
PRE_STUCK = {f"prestuck_{path}" for path in STUCK_PATHS}


def _steps_reordered() -> SagaDefinition:
    steps = list(ORDER_SAGA.steps)
    steps[1], steps[2] = steps[2], steps[1]  # reserve stock before charging
    return dataclasses.replace(ORDER_SAGA, steps=steps)


@workflow.defn(name="OrderSaga")
class ReorderedOrderSaga(OrderSaga):
    """A deliberately incompatible change: the same saga with two steps swapped."""

    definition = _steps_reordered()

    @workflow.run
    async def run(self, saga_input: OrderSagaInput) -> OrderSagaResult:
        return await super().run(saga_input)


@workflow.defn(name="OrderSaga")
class UnguardedMemoOrderSaga(OrderSaga):
    """The outcome memo added without its ``workflow.patched`` guard."""

    @workflow.run
    async def run(self, saga_input: OrderSagaInput) -> OrderSagaResult:
        result = await self._runner.run()
        workflow.upsert_memo({"saga_status": self._runner.phase.value})
        return OrderSagaResult(order_id=saga_input.order.order_id, status=result.phase)


def _replayer(workflow_class: type) -> Replayer:
    return Replayer(
        workflows=[workflow_class],
        data_converter=pydantic_data_converter,
        workflow_runner=UnsandboxedWorkflowRunner(),
    )


def _history(name: str) -> WorkflowHistory:
    return load_history_files([HISTORIES / f"{name}.json"])[0]


def _events(path: Path) -> list[dict[str, object]]:
    events: list[dict[str, object]] = json.loads(path.read_text(encoding="utf-8"))["events"]
    return events


def _marker_data(path: Path, marker: str, details: str) -> list[dict[str, object]]:
    """The JSON payloads of ``path``'s markers called ``marker`` (``core_patch``...)."""
    found = []
    for event in _events(path):
        attributes = event.get("markerRecordedEventAttributes")
        if not isinstance(attributes, dict) or attributes["markerName"] != marker:
            continue
        payload = attributes["details"][details]["payloads"][0]["data"]
        found.append(json.loads(base64.b64decode(payload)))
    return found


def _patches(path: Path) -> list[object]:
    return [data["id"] for data in _marker_data(path, "core_patch", "patch-data")]


def _scheduled_activities(path: Path) -> list[str]:
    return [
        attributes["activityType"]["name"]
        for event in _events(path)
        if isinstance(attributes := event.get("activityTaskScheduledEventAttributes"), dict)
    ]


def _has_patch_marker(path: Path) -> bool:
    return OUTCOME_MEMO_PATCH in _patches(path)


async def test_every_saga_path_has_a_committed_history() -> None:
    """One history per path, plus the ones recorded before the patch."""
    assert {path.stem for path in HISTORIES.glob("*.json")} == (
        PATHS | PRE_LEAN | PRE_PATCH | PRE_STUCK
    )


async def test_every_committed_history_replays_against_the_current_code() -> None:
    """The current OrderSaga replays every path, pre-patch histories included."""
    report = await replay_files(sorted(HISTORIES.glob("*.json")))

    assert report.failures == ()
    assert {outcome.workflow_id for outcome in report.outcomes} == (
        PATHS | PRE_LEAN | PRE_PATCH | PRE_STUCK
    )


async def test_reordering_steps_is_caught_as_nondeterminism() -> None:
    """Swapping two steps breaks running sagas, and replay says so."""
    result = await _replayer(ReorderedOrderSaga).replay_workflow(
        _history("happy_path"), raise_on_replay_failure=False
    )

    assert isinstance(result.replay_failure, NondeterminismError)


async def test_the_report_names_each_history_that_does_not_replay() -> None:
    """replay_files reports per workflow id: ok, or the error."""
    paths = [HISTORIES / "happy_path.json", HISTORIES / "payment_declined.json"]

    current = await replay_files(paths)
    reordered = await replay_files(paths, workflows=[ReorderedOrderSaga])

    assert current.ok
    assert [outcome.workflow_id for outcome in current.outcomes] == [
        "happy_path",
        "payment_declined",
    ]
    assert not reordered.ok
    assert [outcome.workflow_id for outcome in reordered.failures] == [
        "happy_path",
        "payment_declined",
    ]
    assert all(
        (outcome.error or "").startswith("NondeterminismError") for outcome in reordered.failures
    )
    assert reordered.as_dict()["failed"] == 2
    assert reordered.summary().splitlines()[-1] == "2 replayed, 2 failed"
    assert current.summary().splitlines()[0] == "ok    happy_path"


async def test_the_patched_memo_keeps_old_histories_replayable() -> None:
    """Histories from before the patch have no marker and still replay; unguarded, they fail."""
    for name in sorted(PRE_PATCH):
        assert not _has_patch_marker(HISTORIES / f"{name}.json")
        assert _has_patch_marker(HISTORIES / f"{name.replace('prepatch_', 'prelean_')}.json")

    report = await replay_files([HISTORIES / f"{name}.json" for name in sorted(PRE_PATCH)])
    unguarded = await _replayer(UnguardedMemoOrderSaga).replay_workflow(
        _history("prepatch_payment_declined"), raise_on_replay_failure=False
    )

    assert report.ok
    assert isinstance(unguarded.replay_failure, NondeterminismError)


async def test_lean_histories_carry_the_patch_and_run_the_orders_own_steps_locally() -> None:
    """Every path recorded now is lean; none from before is; the order's own steps leave a
    local activity marker each, and never a scheduled activity."""
    own_steps = {PLACE_ORDER, COMPLETE_ORDER, CANCEL_ORDER}
    for name in sorted(PATHS):
        lean = HISTORIES / f"{name}.json"
        # No outcome-memo marker any more; the stuck paths open an incident and keep
        # SagaStuck, and the one that fails for five minutes parks its step.
        stuck = {INCIDENTS_PATCH, STUCK_ATTRIBUTE_PATCH} if name in STUCK_PATHS else set()
        parked = {PARKING_PATCH} if name == "forward_budget_exhausted" else set()
        assert set(_patches(lean)) == {LEAN_HISTORY_PATCH} | stuck | parked, name
        assert not own_steps & set(_scheduled_activities(lean))
        local = [
            data["activity_type"] for data in _marker_data(lean, "core_local_activity", "data")
        ]
        assert PLACE_ORDER in local
        before = HISTORIES / f"prelean_{name}.json"
        assert LEAN_HISTORY_PATCH not in _patches(before)
        assert PLACE_ORDER in _scheduled_activities(before)


async def test_stuck_sagas_keep_the_stuck_attribute_and_older_histories_replay() -> None:
    """A saga that gets stuck sets ``SagaStuck`` behind its patch marker, true then false once
    it moves on (and opens an incident, parks, each behind its own); the same paths recorded
    before them have none of it and replay."""
    for name in sorted(STUCK_PATHS):
        values = _stuck_values(HISTORIES / f"{name}.json")
        assert values[0] is True and values[-1] is False, (name, values)
        local = _marker_data(HISTORIES / f"{name}.json", "core_local_activity", "data")
        incidents = [str(data["activity_type"]) for data in local]
        assert [a for a in incidents if a.startswith("incident.")] == [
            OPEN_INCIDENT,
            RESOLVE_INCIDENT,
        ], name
        before = set(_patches(HISTORIES / f"prestuck_{name}.json"))
        assert not before & {STUCK_ATTRIBUTE_PATCH, INCIDENTS_PATCH, PARKING_PATCH}
        assert _stuck_values(HISTORIES / f"prestuck_{name}.json") == []
    for name in sorted(PATHS - STUCK_PATHS):
        assert _stuck_values(HISTORIES / f"{name}.json") == [], name

    report = await replay_files([HISTORIES / f"{name}.json" for name in sorted(PRE_STUCK)])

    assert report.ok, report.summary()


def _stuck_values(path: Path) -> list[bool]:
    """Each value of ``SagaStuck`` the history upserted, in order."""
    values = []
    for event in _events(path):
        attributes = event.get("upsertWorkflowSearchAttributesEventAttributes")
        if isinstance(attributes, dict):
            field = attributes["searchAttributes"]["indexedFields"].get("SagaStuck")
            if field is not None:
                values.append(json.loads(base64.b64decode(field["data"])))
    return values


def _upserts_per_workflow_task(path: Path) -> list[int]:
    """How many search-attribute upserts each workflow task's completion wrote."""
    counts: dict[object, int] = {}
    for event in _events(path):
        attributes = event.get("upsertWorkflowSearchAttributesEventAttributes")
        if not isinstance(attributes, dict):
            continue
        fields = attributes["searchAttributes"]["indexedFields"]
        if "TemporalChangeVersion" in fields:
            continue  # written by the SDK beside each patch marker
        task = attributes["workflowTaskCompletedEventId"]
        counts[task] = counts.get(task, 0) + 1
    return list(counts.values())


async def test_a_lean_history_upserts_at_most_once_per_workflow_task() -> None:
    """The saga's attributes change several times in some workflow tasks (a local step, then
    the next step; the first task's start attributes and status): one upsert each."""
    for name in sorted(PATHS):
        assert max(_upserts_per_workflow_task(HISTORIES / f"{name}.json")) == 1, name
    before = _upserts_per_workflow_task(HISTORIES / "prelean_happy_path.json")
    assert max(before) > 1
