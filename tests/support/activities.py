"""Running a service's activity the way Temporal would, again and again."""

from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

T = TypeVar("T")


async def refused_each_time(
    activity: Callable[[T], Awaitable[object]],
    arg: T,
    error_type: str,
    *,
    retryable: bool = False,
    times: int = 2,
) -> str:
    """Run ``activity`` ``times`` times (Temporal runs an activity at least once): each run is
    refused with an ``ApplicationError`` of ``error_type``, retryable or not as the refusal
    says. Returns the refusal's message."""
    env = ActivityEnvironment()
    for _ in range(times):
        with pytest.raises(ApplicationError) as refused:
            await env.run(activity, arg)
        assert refused.value.type == error_type
        assert refused.value.non_retryable is not retryable
    return refused.value.message
