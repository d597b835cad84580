"""Scripts called in one loop turn share a pipeline; the calls of a merged script in it are
one call, sent first; against the real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis
from redis.exceptions import ResponseError

from claude_proxy.state.batching import ScriptBatcher
from claude_proxy.state.redis import open_redis

# ARGV: key prefix, tag, then groups of one value. Counts its runs, logs each group in
# order, and answers each group with "<tag>:<value>".
MERGED = r"""
local P, tag = ARGV[1], ARGV[2]
redis.call('INCR', P .. 'runs')
local out = {}
for g = 3, #ARGV do
  if ARGV[g] == 'fail' then return redis.error_reply('FAILED on purpose') end
  redis.call('RPUSH', P .. 'order', ARGV[g])
  out[#out + 1] = tag .. ':' .. ARGV[g]
end
return out
"""
# ARGV: key prefix, value. Logs the value in order.
SINGLE = r"""
redis.call('RPUSH', ARGV[1] .. 'order', ARGV[2])
return ARGV[2]
"""


@pytest.fixture
async def batcher(redis_url: str, key_prefix: str) -> AsyncIterator[ScriptBatcher]:
    client = open_redis(redis_url)
    scripts = ScriptBatcher(
        client,
        {"FIRST": MERGED, "MERGED": MERGED, "SINGLE": SINGLE},
        merged={"FIRST": 2, "MERGED": 2},
    )
    yield scripts
    await scripts.close()
    await client.aclose()


def _sync(redis_url: str) -> redis.Redis:
    return redis.Redis.from_url(redis_url, decode_responses=True)


async def test_consecutive_calls_of_a_merged_script_are_one_call_each_with_its_reply(
    batcher: ScriptBatcher, redis_url: str, key_prefix: str
) -> None:
    replies = await asyncio.gather(
        *(batcher.call("MERGED", [key_prefix, "t", f"v{i}"]) for i in range(10))
    )
    assert replies == [f"t:v{i}" for i in range(10)]
    client = _sync(redis_url)
    try:
        assert client.get(key_prefix + "runs") == "1"
        assert client.lrange(key_prefix + "order", 0, -1) == [f"v{i}" for i in range(10)]
    finally:
        client.close()


async def test_merged_calls_go_first_in_the_order_merged_names_them_the_rest_in_order(
    batcher: ScriptBatcher, redis_url: str, key_prefix: str
) -> None:
    # The scripts known to Redis first: calls that meet NOSCRIPT are sent again after
    # the others of their pipeline.
    await asyncio.gather(
        batcher.call("MERGED", [key_prefix + "warm:", "t", "w"]),
        batcher.call("SINGLE", [key_prefix + "warm:", "w"]),
    )
    calls = [
        batcher.call("MERGED", [key_prefix, "m", "a1"]),
        batcher.call("SINGLE", [key_prefix, "b1"]),
        batcher.call("FIRST", [key_prefix, "f", "f1"]),
        batcher.call("MERGED", [key_prefix, "m", "a2"]),
        batcher.call("SINGLE", [key_prefix, "b2"]),
        batcher.call("FIRST", [key_prefix, "f", "f2"]),
    ]
    assert await asyncio.gather(*calls) == ["m:a1", "b1", "f:f1", "m:a2", "b2", "f:f2"]
    client = _sync(redis_url)
    try:
        assert client.lrange(key_prefix + "order", 0, -1) == ["f1", "f2", "a1", "a2", "b1", "b2"]
        assert client.get(key_prefix + "runs") == "2"  # f1+f2, then a1+a2
    finally:
        client.close()


async def test_an_error_of_a_merged_call_reaches_every_caller_in_it(
    batcher: ScriptBatcher, key_prefix: str
) -> None:
    calls = [batcher.call("MERGED", [key_prefix, "t", value]) for value in ("x", "fail", "y")]
    results = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(r, ResponseError) and "FAILED" in str(r) for r in results)
    # and the batcher goes on
    assert await batcher.call("MERGED", [key_prefix, "t", "z"]) == "t:z"


async def test_merged_calls_survive_redis_forgetting_the_script(
    batcher: ScriptBatcher, redis_url: str, key_prefix: str
) -> None:
    assert await batcher.call("MERGED", [key_prefix, "t", "before"]) == "t:before"
    client = _sync(redis_url)
    try:
        client.script_flush()
    finally:
        client.close()
    replies = await asyncio.gather(
        *(batcher.call("MERGED", [key_prefix, "t", f"v{i}"]) for i in range(3)),
        batcher.call("SINGLE", [key_prefix, "s"]),
    )
    assert replies == ["t:v0", "t:v1", "t:v2", "s"]


async def test_a_call_alone_survives_redis_forgetting_the_script_and_gets_its_error(
    batcher: ScriptBatcher, redis_url: str, key_prefix: str
) -> None:
    # A call alone in its turn goes as a plain command, not a pipeline of one.
    assert await batcher.call("SINGLE", [key_prefix, "a"]) == "a"
    client = _sync(redis_url)
    try:
        client.script_flush()
        assert await batcher.call("SINGLE", [key_prefix, "b"]) == "b"
        with pytest.raises(ResponseError, match="FAILED"):
            await batcher.call("MERGED", [key_prefix, "t", "fail"])
        assert await batcher.call("SINGLE", [key_prefix, "c"]) == "c"
        assert client.lrange(key_prefix + "order", 0, -1) == ["a", "b", "c"]
    finally:
        client.close()
