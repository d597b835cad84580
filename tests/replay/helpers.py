"""Event payloads and small waiting helpers for the replay tests."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable

from claude_proxy.replay import ReplayLog


def event(seq: int) -> bytes:
    return (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
        b'"delta":{"type":"text_delta","text":"piece ' + str(seq).encode() + b'"}}\n\n'
    )


async def read_all(log: ReplayLog, stream_id: str, after: int = 0) -> list[tuple[int, bytes]]:
    got: list[tuple[int, bytes]] = []
    async with contextlib.aclosing(log.read(stream_id, after)) as events:
        async for item in events:
            got.append(item)
    return got


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 2.0) -> None:
    """Poll ``check`` every few milliseconds; fail if it is not true ``within`` seconds."""
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)
