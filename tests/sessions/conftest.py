"""Session stores over every backend, for the contract tests.

``backend`` is one of ``BACKENDS``; tests of several processes or replicas sharing one
store narrow it to ``SHARED`` with ``@pytest.mark.parametrize("backend", SHARED,
indirect=True)``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from claude_proxy.sessions import SessionSettings, SessionStore, open_store
from tests.sessions.postgres_fixtures import postgres_url
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.state.redis_server import start_redis

__all__ = ["key_prefix", "postgres_url", "redis_url", "start_redis"]

# "cached-sqlite" runs the whole contract through the LRU cache that open_store puts in
# front of a shared store.
BACKENDS = ["memory", "sqlite", "cached-sqlite", "postgresql", "redis"]
SHARED = ["sqlite", "postgresql", "redis"]

MakeStore = Callable[..., Awaitable[SessionStore]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def store_settings(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> SessionSettings:
    prefix = "unused:"
    if backend == "memory":
        url = "memory://"
    elif backend.endswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'sessions.db'}"
    elif backend == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
    cache = 100 if backend.startswith("cached") else 0
    return SessionSettings(url=url, key_prefix=prefix, cache_size=cache)


@pytest.fixture
async def make_store(store_settings: SessionSettings) -> AsyncIterator[MakeStore]:
    """``await make(**settings)``: an open store, closed after the test.

    Called twice, it gives two replicas sharing one store (except ``memory``).
    """
    opened: list[SessionStore] = []

    async def make(**fields: Any) -> SessionStore:
        settings = SessionSettings(**{**store_settings.model_dump(), **fields})
        store = await open_store(settings.url, settings)
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()


@pytest.fixture
async def store(make_store: MakeStore) -> SessionStore:
    return await make_store()


@pytest.fixture
async def other(backend: str, store: SessionStore, make_store: MakeStore) -> SessionStore:
    """A second replica on the same store; ``memory`` has only the one."""
    return store if backend == "memory" else await make_store()
