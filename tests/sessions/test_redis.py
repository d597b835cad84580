"""What only the Redis session store has to get right."""

from __future__ import annotations

from redis import asyncio as aioredis

from claude_proxy.sessions import SessionSettings, open_store


async def test_appends_go_on_after_redis_forgets_its_scripts(
    redis_url: str, key_prefix: str
) -> None:
    # After a Redis restart (or SCRIPT FLUSH) the save script is unknown: the store loads it
    # again instead of failing the turn.
    store = await open_store(redis_url, SessionSettings(url=redis_url, key_prefix=key_prefix))
    try:
        assert (
            await store.append("t", "s", [{"role": "user", "content": "one"}], expected_version=0)
            == 1
        )
        admin = aioredis.Redis.from_url(redis_url)
        try:
            await admin.script_flush()
        finally:
            await admin.aclose()
        version = await store.append(
            "t", "s", [{"role": "assistant", "content": "two"}], expected_version=1
        )
        assert version == 2
        session = await store.load("t", "s")
        assert session is not None and [m["content"] for m in session.messages] == ["one", "two"]
    finally:
        await store.close()
