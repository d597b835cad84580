from __future__ import annotations

import pytest

from claude_proxy.replay import ReplaySettings, open_replay_log
from claude_proxy.replay.memory import MemoryReplayLog


async def test_memory_is_the_default() -> None:
    log = await open_replay_log("memory://", ReplaySettings())
    assert isinstance(log, MemoryReplayLog)
    await log.close()


async def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown replay log scheme"):
        await open_replay_log("postgres://x", ReplaySettings())


def test_settings_are_strict() -> None:
    with pytest.raises(ValueError, match="extra"):
        ReplaySettings.model_validate({"tll_seconds": 1})
