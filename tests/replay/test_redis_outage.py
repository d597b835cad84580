"""The Redis replay log while its Redis goes away: streams fail open, the outage is logged once."""

from __future__ import annotations

import asyncio
import logging

import pytest

from claude_proxy.replay import ReplaySettings, open_replay_log
from claude_proxy.state import StateUnavailable
from tests.replay.helpers import event, read_all
from tests.state.redis_server import StartRedis


async def test_an_outage_fails_streams_open_and_is_logged_once(
    start_redis: StartRedis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="claude_proxy.replay")
    server = start_redis()
    log = await open_replay_log(server.url, ReplaySettings(lease_seconds=0.3))
    try:
        for name in ("strm_a", "strm_b", "strm_c"):
            await log.create(name, "acme")
        server.kill()
        for name in ("strm_a", "strm_b", "strm_c"):  # one failed flush each; heartbeats fail
            await log.extend(name, [event(1)])
            await asyncio.sleep(0.2)
        with pytest.raises(StateUnavailable):  # the generation then stops writing: fails open
            await log.extend("strm_a", [event(2)])
        with pytest.raises(StateUnavailable):  # a new stream gets no id while Redis is down
            log.begin("strm_e", "acme")
        server.start()  # empty: what the streams had is gone, and they are not resumable
        async with asyncio.timeout(2):
            while not any("answers again" in m for m in caplog.messages):
                await asyncio.sleep(0.02)
        await log.create("strm_d", "acme")  # new streams are resumable again
        await log.extend("strm_d", [event(1)])
        await log.finish("strm_d")
        assert await read_all(log, "strm_d") == [(1, event(1))]
    finally:
        await log.close()
    assert len([m for m in caplog.messages if "is unavailable" in m]) == 1, caplog.messages
    assert len([m for m in caplog.messages if "answers again" in m]) == 1, caplog.messages
