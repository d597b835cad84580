"""The test double reproduces redis-py's lost cancellation on 3.11, whatever the Python."""

from __future__ import annotations

import asyncio

from tests.state.swallowing import Trap


async def test_a_trapped_command_returns_its_reply_to_a_cancelled_task(redis_url: str) -> None:
    trap = Trap(lambda packed: b"PING" in packed)
    client = trap.open_redis(redis_url)

    async def ping() -> tuple[object, int]:
        reply = await client.ping()
        task = asyncio.current_task()
        assert task is not None
        return reply, task.cancelling()

    try:
        task = asyncio.create_task(ping())
        async with asyncio.timeout(1.0):
            await trap.sprung.wait()
        task.cancel()
        assert await task == (True, 1)  # the reply, with the cancel still pending
        assert await client.ping()  # only the first matching command is trapped
    finally:
        await client.aclose()
