"""The service runtime without engines: a failed background task stops the health server with
its error. A real service process: ``tests/system/runtime/test_service.py``."""

import asyncio

import pytest
import uvicorn
from fastapi import FastAPI

from infra.engines.processes import free_port
from runtime._service import _serve_until_stopped


async def test_a_failed_background_task_stops_the_health_server_with_its_error() -> None:
    server = uvicorn.Server(
        uvicorn.Config(FastAPI(), host="127.0.0.1", port=free_port(), log_level="warning")
    )

    async def carrier() -> None:
        await asyncio.sleep(0.2)
        raise RuntimeError("database is gone")

    background = [asyncio.create_task(carrier())]
    with pytest.raises(RuntimeError, match="database is gone"):
        await asyncio.wait_for(_serve_until_stopped(server, background), 10)
    assert server.should_exit
