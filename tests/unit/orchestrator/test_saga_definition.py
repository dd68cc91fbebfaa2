"""The saga definition on its own: validation and the context input builders see."""

from datetime import timedelta

import pytest
from pydantic import BaseModel

from orchestrator.saga import (
    ActivityCall,
    SagaContext,
    SagaDefinition,
    SagaFailure,
    Step,
    StepPolicy,
    WaitStep,
)


class Done(BaseModel):
    value: str


def _step(name: str, *, pivot: bool = False) -> Step:
    return Step(
        name=name,
        action=ActivityCall(
            name=f"{name}.do", task_queue="q", input=lambda _: Done(value=""), result=Done
        ),
        pivot=pivot,
    )


def test_step_names_must_be_unique() -> None:
    """Two steps with one name would share one status entry."""
    with pytest.raises(ValueError, match="repeats step names"):
        SagaDefinition(name="s", steps=[_step("a"), _step("a")])


def test_a_saga_has_at_most_one_pivot() -> None:
    """There is one point of no return."""
    wait = WaitStep(
        name="w", result=Done, timeout=lambda _: timedelta(1), timeout_reason="late", pivot=True
    )
    with pytest.raises(ValueError, match="more than one pivot"):
        SagaDefinition(name="s", steps=[_step("a", pivot=True), wait])


def test_a_policy_needs_at_least_one_attempt() -> None:
    """Zero attempts per round would never run the activity."""
    with pytest.raises(ValueError, match="at least 1"):
        StepPolicy(attempts_before_stuck=0)


def test_the_context_gives_typed_results_and_the_failure() -> None:
    """Input builders read earlier results by step name and type, and why the saga turned."""
    ctx: SagaContext[str] = SagaContext("input")
    ctx.results["a"] = Done(value="x")

    assert ctx.result("a", Done).value == "x"
    assert ctx.result_or_none("b", Done) is None
    assert (ctx.failure_reason, ctx.failed_step) == ("", None)
    with pytest.raises(TypeError, match="returned Done"):
        ctx.result("a", SagaFailureModel)
    ctx.failure = SagaFailure("declined", "a")
    assert (ctx.failure_reason, ctx.failed_step) == ("declined", "a")


class SagaFailureModel(BaseModel):
    reason: str
