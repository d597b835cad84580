"""Choose the replay-log backend from the ``state`` URL; backends are imported lazily."""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

from claude_proxy.replay.base import ReplayLog, ReplaySettings
from claude_proxy.state.backends import load_backend

__all__ = ["BACKENDS", "open_replay_log"]

# URL scheme -> "module:class". redis-py is imported only when a redis URL is configured.
BACKENDS = {
    "memory": "claude_proxy.replay.memory:MemoryReplayLog",
    "redis": "claude_proxy.replay.redis:RedisReplayLog",
    "rediss": "claude_proxy.replay.redis:RedisReplayLog",
    "unix": "claude_proxy.replay.redis:RedisReplayLog",
}


async def open_replay_log(url: str, settings: ReplaySettings) -> ReplayLog:
    """The backend for ``url`` (``memory://`` or ``redis://…``), connected; close it later."""
    scheme = urlsplit(url or "memory://").scheme
    if scheme not in BACKENDS:
        known = ", ".join(sorted(BACKENDS))
        raise ValueError(f"unknown replay log scheme {scheme!r}; use one of {known}")
    backend = load_backend(BACKENDS, scheme)
    return cast(ReplayLog, await backend.open(url, settings))
