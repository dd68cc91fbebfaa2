"""Replay against a real server: ``replay_recent`` lists the OrderSaga runs Temporal holds and
replays each. The committed histories replay in ``tests/unit/orchestrator/test_replay.py``."""

import asyncio

from temporalio.client import Client

from ops.replay import replay_recent
from tests.support.saga_harness import (
    DECLINED_TOKEN,
    StandIns,
    make_order,
    saga_workers,
)


async def test_replay_recent_replays_what_the_server_lists(temporal_client: Client) -> None:
    """replay_recent lists OrderSaga runs on a real server and replays each of them.

    Temporal's dev server, not the time-skipping one: that one has no visibility API.
    """
    async with saga_workers(temporal_client, StandIns()) as harness:
        order = make_order(token=DECLINED_TOKEN)
        handle = await harness.start(order)
        await handle.result()

    async with asyncio.timeout(20):
        while True:  # visibility is eventually consistent
            report = await replay_recent(temporal_client, limit=20)
            if handle.id in {outcome.workflow_id for outcome in report.outcomes}:
                break
            await asyncio.sleep(0.2)

    assert report.ok
