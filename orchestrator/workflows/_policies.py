"""The failure policy both sagas give a call to one of our services."""

from datetime import timedelta

from orchestrator.saga import StepPolicy

__all__ = ["service_policy"]


def service_policy(*business_errors: str) -> StepPolicy:
    """A call to one of our services: stuck after 5 attempts a round, 5 minutes to succeed
    before the pivot (after it, no budget: the step is retried until it succeeds); parked
    after 20 failed attempts in a row (four rounds, about four minutes), so a provider that is
    down is not called on, until an operator acts or 30 minutes have passed."""
    return StepPolicy(
        business_errors=frozenset(business_errors),
        attempts_before_stuck=5,
        time_budget=timedelta(minutes=5),
        park_after=20,
        park_for=timedelta(minutes=30),
    )
