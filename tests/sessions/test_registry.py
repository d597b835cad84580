"""Choosing a store by URL, its settings, and the schema version of the SQL stores."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import asyncpg
import pytest
from pydantic import ValidationError

import claude_proxy.sessions as sessions
from claude_proxy.sessions import CachedStore, SessionSettings, SessionStore, open_store
from claude_proxy.sessions.memory import MemoryStore
from claude_proxy.sessions.postgres import PostgresStore
from claude_proxy.sessions.redis import RedisStore
from claude_proxy.sessions.sqlite import SqliteStore, sqlite_path


def _conforms(
    memory: MemoryStore,
    sqlite: SqliteStore,
    postgres: PostgresStore,
    redis: RedisStore,
    cached: CachedStore,
) -> list[SessionStore]:
    """Checked by mypy: every backend, and the cache, is structurally a SessionStore."""
    return [memory, sqlite, postgres, redis, cached]


def test_the_public_api() -> None:
    assert set(sessions.__all__) >= {
        "Session", "SessionInfo", "SessionConflict", "SessionBusy", "SessionStore",
        "SessionSettings", "open_store", "CachedStore",
    }  # fmt: skip


def test_settings_are_strict_and_default_to_sqlite() -> None:
    settings = SessionSettings()
    assert sqlite_path(settings.url) == "./claude-proxy-sessions.db"
    assert (settings.on_busy, settings.ttl_seconds, settings.cache_size) == ("wait", None, 10_000)
    with pytest.raises(ValidationError, match="extra"):
        SessionSettings.model_validate({"ttl_second": 1})
    with pytest.raises(ValidationError):
        SessionSettings.model_validate({"on_busy": "queue"})
    with pytest.raises(ValidationError):
        settings.cache_size = 1


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///sessions.db", "sessions.db"),
        ("sqlite:///./data/sessions.db", "./data/sessions.db"),
        ("sqlite:////var/lib/claude-proxy/sessions.db", "/var/lib/claude-proxy/sessions.db"),
        ("sqlite://:memory:", ":memory:"),
        ("sqlite:///:memory:", ":memory:"),
    ],
)
def test_sqlite_urls(url: str, path: str) -> None:
    assert sqlite_path(url) == path


@pytest.mark.parametrize("url", ["sqlite://host/sessions.db", "sqlite://"])
def test_bad_sqlite_urls(url: str) -> None:
    with pytest.raises(ValueError, match="sqlite"):
        sqlite_path(url)


async def test_an_unknown_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown session store scheme"):
        await open_store("mysql://x", SessionSettings())


async def test_a_shared_store_is_cached_unless_turned_off(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    cached = await open_store(url, SessionSettings(url=url))
    plain = await open_store(url, SessionSettings(url=url, cache_size=0))
    memory = await open_store("memory://", SessionSettings(url="memory://"))
    try:
        assert isinstance(cached, CachedStore) and isinstance(cached.inner, SqliteStore)
        assert isinstance(plain, SqliteStore)
        assert isinstance(memory, MemoryStore)
        assert await cached.healthy() and await plain.healthy() and await memory.healthy()
    finally:
        for store in (cached, plain, memory):
            await store.close()


async def test_sqlite_in_memory_works() -> None:
    store = await open_store("sqlite://:memory:", SessionSettings(cache_size=0))
    try:
        assert await store.append("t", "s", [{"role": "user", "content": "x"}], expected_version=0)
        session = await store.load("t", "s")
        assert session is not None and session.version == 1
    finally:
        await store.close()


async def test_sqlite_schema_is_versioned_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    url = f"sqlite:///{path}"
    store = await open_store(url, SessionSettings(cache_size=0))
    await store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.execute("UPDATE schema_version SET version = 2")
    with pytest.raises(RuntimeError, match="schema version 2"):
        await open_store(url, SessionSettings(cache_size=0))


async def test_postgres_schema_is_versioned_and_a_newer_one_refused(postgres_url: str) -> None:
    store = await open_store(postgres_url, SessionSettings(cache_size=0))
    await store.close()
    again = await open_store(postgres_url, SessionSettings(cache_size=0))  # tables exist: fine
    await again.close()
    conn = await asyncpg.connect(postgres_url)
    try:
        assert await conn.fetchval("SELECT version FROM claude_proxy_session_schema") == 1
        await conn.execute("UPDATE claude_proxy_session_schema SET version = 2")
    finally:
        await conn.close()
    with pytest.raises(RuntimeError, match="schema version 2"):
        await open_store(postgres_url, SessionSettings(cache_size=0))
