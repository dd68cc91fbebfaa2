"""How a saga is declared: an ordered list of steps, each with its undo and its failure policy.

Nothing here knows about orders; a saga is data, and ``SagaRunner`` runs it inside a
workflow. Input builders are plain functions of the ``SagaContext`` (the saga's input and
the results of the steps before), called in workflow code, so they must be deterministic.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from contracts.activities import CancelCause

__all__ = [
    "ActivityCall",
    "InputBuilder",
    "SagaContext",
    "SagaDefinition",
    "SagaFailure",
    "Step",
    "StepPolicy",
    "WaitStep",
]

_GOING_ON = frozenset({"RUNNING", "COMPENSATING", "COMPLETED"})
"""Statuses an outcome may not be named: a saga that ends undone is none of them."""

InputT = TypeVar("InputT")
ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class SagaFailure:
    """Why a saga stopped going forward, and at which step (``None``: between steps)."""

    reason: str
    step: str | None
    cause: CancelCause = CancelCause.STEP_FAILED
    """A step failed, or the saga was asked to stop (a cancel request, a workflow cancel)."""
    outcome: str | None = None
    """The status the saga ends with once undone, when the step names one for this failure
    (:attr:`Step.refusal_outcome`, :attr:`WaitStep.timeout_outcome`); else ``CANCELLED``."""


class SagaContext(Generic[InputT]):
    """What input builders see: the saga's input, earlier results, and the failure if any."""

    def __init__(self, saga_input: InputT) -> None:
        self.input = saga_input
        self.results: dict[str, BaseModel] = {}
        self.failure: SagaFailure | None = None

    def result(self, step: str, kind: type[ModelT]) -> ModelT:
        """The result of ``step``, which must have completed with a ``kind``."""
        value = self.results[step]
        if not isinstance(value, kind):
            raise TypeError(f"step {step!r} returned {type(value).__name__}, not {kind.__name__}")
        return value

    def result_or_none(self, step: str, kind: type[ModelT]) -> ModelT | None:
        """The result of ``step`` if it completed, else ``None``."""
        return self.result(step, kind) if step in self.results else None

    @property
    def failure_reason(self) -> str:
        """The reason the saga is being undone (empty while it goes forward)."""
        return self.failure.reason if self.failure else ""

    @property
    def failed_step(self) -> str | None:
        """The step at which the saga stopped going forward."""
        return self.failure.step if self.failure else None

    @property
    def failure_cause(self) -> CancelCause | None:
        """Why the saga is being undone (``None`` while it goes forward)."""
        return self.failure.cause if self.failure else None


InputBuilder = Callable[[SagaContext[Any]], BaseModel]
"""Builds an activity's input model from the saga's context."""


@dataclass(frozen=True)
class ActivityCall:
    """One activity, called by name on its task queue, as the contract publishes it."""

    name: str
    task_queue: str
    input: InputBuilder
    result: type[BaseModel]
    attempt_timeout: timedelta = timedelta(seconds=30)
    """Start-to-close timeout of one attempt."""
    pickup_timeout: timedelta | None = timedelta(minutes=1)
    """Schedule-to-start timeout: how long the call may wait for a worker of its task queue.
    When it passes (the service is down) the call fails like any technical failure, so the
    step shows up stuck, with a last error that names the task queue, and can be repaired."""
    local: bool = False
    """Run as a local activity, in the worker that runs the saga's workflow (which must
    register it): no round trip through the task queue, one history event instead of three
    and no workflow task of its own. For the workflow's own service's short steps;
    ``task_queue`` and ``pickup_timeout`` then only say who owns the step. Retries and
    stuck rounds are the same; the attempts within a round are not visible until it ends."""


@dataclass(frozen=True)
class StepPolicy:
    """How a step (and its compensation) fails.

    A business refusal (an ``ApplicationError`` whose ``type`` is in ``business_errors``)
    is never retried: the saga turns back at once. Any other error is technical and is
    retried, ``attempts_before_stuck`` times in one round with exponential backoff from
    ``retry_interval``; when a round runs out the step is flagged stuck in the status and
    tried again in a new round after ``stuck_backoff`` (doubling, capped at
    ``max_backoff``). A forward step that has not succeeded within ``time_budget`` fails,
    and the saga turns back. Compensations ignore both the business errors and the budget:
    they are retried until they succeed or an operator resolves them.

    With ``park_after``, a step (or compensation) whose failed attempts in a row reach it is
    parked instead of tried again: no attempt until an operator's retry-now or resolve, or
    until ``park_for`` has passed (then a new count starts). A parked compensation is never
    given up: it stays parked until repaired. A parked forward step still has its budget: when
    it runs out, the saga turns back.
    """

    business_errors: frozenset[str] = frozenset()
    attempts_before_stuck: int = 5
    time_budget: timedelta | None = timedelta(minutes=5)
    retry_interval: timedelta = timedelta(seconds=1)
    stuck_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(minutes=10)
    park_after: int | None = None
    """Park after this many failed attempts in a row (counted as the status counts them: a
    round that runs out counts ``attempts_before_stuck``); ``None``: keep retrying."""
    park_for: timedelta | None = None
    """With ``park_after``: resume by itself after this long; ``None``: only an operator."""

    def __post_init__(self) -> None:
        if self.attempts_before_stuck < 1:
            raise ValueError("attempts_before_stuck must be at least 1")
        if self.park_after is not None and self.park_after < 1:
            raise ValueError("park_after must be at least 1")
        if self.park_for is not None and self.park_after is None:
            raise ValueError("park_for needs park_after: a step parks only after failing")


@dataclass(frozen=True)
class Step:
    """A forward activity, the activity that undoes it (if any) and its failure policy.

    A step whose outcome is uncertain when the saga turns back (its time budget ran out,
    or it was interrupted by a cancellation) is compensated too, so compensations must be
    idempotent and must accept undoing something that never happened; build their input
    from the saga's input and failure, not from the step's result, which may not exist.
    """

    name: str
    action: ActivityCall
    compensation: ActivityCall | None = None
    policy: StepPolicy = field(default_factory=StepPolicy)
    compensation_policy: StepPolicy | None = None
    """Retry policy of the compensation; ``policy`` when not given."""
    pivot: bool = False
    """Once this step is done the saga cannot turn back: later steps are retried until
    they succeed (or an operator resolves them), and cancel requests are refused."""
    refusal_outcome: str | None = None
    """The status the saga ends with when this step is refused (one of ``business_errors``)
    and the saga is undone: ``REJECTED``, say, where a refusal is an answer rather than a
    failure. ``None``: ``CANCELLED``."""


@dataclass(frozen=True)
class WaitStep:
    """A step that waits, on a durable timer, for a value delivered from outside (a signal).

    The step completes with the first delivered value that ``accept`` does not reject
    (``accept`` returns the reason to reject, or ``None``); when ``timeout`` has passed
    first, it fails with ``timeout_reason`` and the saga turns back. A value delivered
    while the step is still pending is kept until the step starts; a value delivered
    after the step is over changes nothing.
    """

    name: str
    result: type[BaseModel]
    timeout: Callable[[SagaContext[Any]], timedelta]
    timeout_reason: str
    accept: Callable[[SagaContext[Any], Any], str | None] | None = None
    pivot: bool = False
    owner: str | None = None
    """Who delivers the value (a service's task queue), as operators are shown it."""
    timeout_outcome: str | None = None
    """The status the saga ends with when the wait times out and the saga is undone
    (``EXPIRED``, say). ``None``: ``CANCELLED``."""


@dataclass(frozen=True)
class SagaDefinition:
    """A named, ordered list of steps."""

    name: str
    steps: Sequence[Step | WaitStep]
    incidents: bool = False
    """Open an incident (the orchestrator's ``incident.open`` local activity) once per stuck
    episode of a step, and resolve it when the episode ends (``incident.resolve``)."""
    lean_from_start: bool = False
    """The saga has never run without the lean history (``LEAN_HISTORY_PATCH``): it writes
    the lean history without the patch's marker, two history events fewer per run. Only for a
    saga that no history from before that patch exists for: those would no longer replay."""

    def __post_init__(self) -> None:
        names = [step.name for step in self.steps]
        if not names:
            raise ValueError(f"saga {self.name!r} has no steps")
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"saga {self.name!r} repeats step names {duplicates}")
        if sum(step.pivot for step in self.steps) > 1:
            raise ValueError(f"saga {self.name!r} has more than one pivot step")
        for step in self.steps:
            outcome = step.timeout_outcome if isinstance(step, WaitStep) else step.refusal_outcome
            if outcome in _GOING_ON:
                raise ValueError(
                    f"saga {self.name!r}: step {step.name!r} would end the saga as {outcome}, "
                    "the name of a saga that has not ended"
                )

    def step(self, name: str) -> Step | WaitStep:
        """The step called ``name``.

        Raises:
            KeyError: there is no such step.
        """
        for step in self.steps:
            if step.name == name:
                return step
        raise KeyError(name)

    @property
    def step_names(self) -> list[str]:
        """The names of the steps, in order."""
        return [step.name for step in self.steps]

    @property
    def outcomes(self) -> dict[str, str]:
        """The outcomes the saga may end with besides ``COMPLETED`` and ``CANCELLED``, each
        with the step that ends it so (``{"REJECTED": "authorize_return"}``)."""
        named: dict[str, str] = {}
        for step in self.steps:
            outcome = step.timeout_outcome if isinstance(step, WaitStep) else step.refusal_outcome
            if outcome is not None:
                named.setdefault(outcome, step.name)
        return named

    def owner(self, name: str, *, compensating: bool = False) -> str | None:
        """Who runs step ``name`` (its task queue), or its compensation when ``compensating``.

        Raises:
            KeyError: there is no such step.
        """
        step = self.step(name)
        if isinstance(step, WaitStep):
            return step.owner
        call = step.compensation if compensating else step.action
        return call.task_queue if call is not None else None
