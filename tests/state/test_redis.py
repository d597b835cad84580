from __future__ import annotations

import pytest

from claude_proxy.errors import GatewayError
from claude_proxy.state import StateUnavailable
from claude_proxy.state.redis import open_redis, translate_redis_errors


async def test_open_redis_round_trip(redis_url: str, key_prefix: str) -> None:
    client = open_redis(redis_url)
    try:
        await client.set(key_prefix + "k", "v")
        assert await client.get(key_prefix + "k") == "v"  # replies are decoded
    finally:
        await client.aclose()


async def test_unreachable_redis_becomes_state_unavailable() -> None:
    client = open_redis("redis://:hunter2@127.0.0.1:1/0", socket_timeout=0.5)
    try:
        with pytest.raises(StateUnavailable) as caught, translate_redis_errors("testing"):
            await client.ping()
    finally:
        await client.aclose()
    assert isinstance(caught.value, GatewayError)
    assert caught.value.status == 503
    assert "hunter2" not in str(caught.value)
    assert "127.0.0.1" not in str(caught.value)
