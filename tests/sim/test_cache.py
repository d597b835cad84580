"""Prompt caching: writes, reads, TTL expiry via an injected clock, and usage arithmetic."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import pytest

from claude_proxy.errors import InvalidRequest
from claude_proxy.sim.cache import PromptCache
from claude_proxy.sim.settings import LatencyModel
from claude_proxy.sim.tokens import PromptUnit

from .conftest import NEW_VERSION, FakeClock, Sim, StartSim, headers

CACHE_MODEL = "claude-opus-5"  # minimum cacheable prefix: 512 tokens
LONG = "Reference material about rivers and harbors. " * 100  # 1301 tokens


def _payload(
    system: Any, messages: list[dict[str, Any]] | None = None, **fields: Any
) -> dict[str, Any]:
    return {
        "model": CACHE_MODEL,
        "max_tokens": 50,
        "system": system,
        "messages": messages or [{"role": "user", "content": "Summarise."}],
        **fields,
    }


def _marked(text: str, ttl: str | None = None) -> list[dict[str, Any]]:
    marker: dict[str, Any] = {"type": "ephemeral"}
    if ttl:
        marker["ttl"] = ttl
    return [{"type": "text", "text": text, "cache_control": marker}]


async def _usage(
    sim: Sim, http: aiohttp.ClientSession, payload: dict[str, Any], version: str = "2023-06-01"
) -> dict[str, Any]:
    async with http.post(f"{sim.url}/v1/messages", headers=headers(version), json=payload) as resp:
        data = await resp.json()
        assert resp.status == 200, data
        usage: dict[str, Any] = data["usage"]
        return usage


async def _count(sim: Sim, http: aiohttp.ClientSession, payload: dict[str, Any]) -> int:
    trimmed = {k: v for k, v in payload.items() if k != "max_tokens"}
    async with http.post(
        f"{sim.url}/v1/messages/count_tokens", headers=headers(), json=trimmed
    ) as resp:
        count: int = (await resp.json())["input_tokens"]
        return count


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def csim(start_sim: StartSim, clock: FakeClock) -> Sim:
    return await start_sim(clock=clock)


def _total(usage: dict[str, Any]) -> int:
    return int(
        usage["input_tokens"]
        + usage["cache_read_input_tokens"]
        + usage["cache_creation_input_tokens"]
    )


async def test_write_then_read(csim: Sim, http: aiohttp.ClientSession) -> None:
    payload = _payload(_marked(LONG))
    first = await _usage(csim, http, payload)
    assert first["cache_creation_input_tokens"] > 1000
    assert first["cache_read_input_tokens"] == 0
    assert first["cache_creation"] == {
        "ephemeral_5m_input_tokens": first["cache_creation_input_tokens"],
        "ephemeral_1h_input_tokens": 0,
    }
    second = await _usage(csim, http, payload)
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert second["input_tokens"] == first["input_tokens"]
    assert _total(first) == _total(second) == await _count(csim, http, payload)


async def test_expiry_and_refresh(csim: Sim, http: aiohttp.ClientSession, clock: FakeClock) -> None:
    payload = _payload(_marked(LONG))
    written = (await _usage(csim, http, payload))["cache_creation_input_tokens"]
    clock.advance(200)
    assert (await _usage(csim, http, payload))["cache_read_input_tokens"] == written
    clock.advance(200)  # 400 s after the write, but only 200 s after the refreshing hit
    assert (await _usage(csim, http, payload))["cache_read_input_tokens"] == written
    clock.advance(301)
    expired = await _usage(csim, http, payload)
    assert expired["cache_read_input_tokens"] == 0
    assert expired["cache_creation_input_tokens"] == written


async def test_one_hour_ttl(csim: Sim, http: aiohttp.ClientSession, clock: FakeClock) -> None:
    payload = _payload(_marked(LONG, "1h"))
    first = await _usage(csim, http, payload)
    assert first["cache_creation"]["ephemeral_1h_input_tokens"] > 0
    assert first["cache_creation"]["ephemeral_5m_input_tokens"] == 0
    clock.advance(1800)
    assert (await _usage(csim, http, payload))["cache_read_input_tokens"] > 0
    clock.advance(3601)
    assert (await _usage(csim, http, payload))["cache_read_input_tokens"] == 0


async def test_short_prefix_does_not_cache(csim: Sim, http: aiohttp.ClientSession) -> None:
    payload = _payload(_marked("Too short to cache."))
    for _ in range(2):
        usage = await _usage(csim, http, payload)
        assert usage["cache_creation_input_tokens"] == 0
        assert usage["cache_read_input_tokens"] == 0


async def test_automatic_caching_moves_forward(csim: Sim, http: aiohttp.ClientSession) -> None:
    turn1 = [{"role": "user", "content": LONG}]
    first = await _usage(
        csim, http, _payload("Be brief.", turn1, cache_control={"type": "ephemeral"})
    )
    assert first["cache_creation_input_tokens"] > 1000
    turn2 = [
        *turn1,
        {"role": "assistant", "content": "Rivers flow."},
        {"role": "user", "content": "More please."},
    ]
    second = await _usage(
        csim, http, _payload("Be brief.", turn2, cache_control={"type": "ephemeral"})
    )
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] > 0  # the new turns are written too
    assert second["input_tokens"] == first["input_tokens"]  # just the request overhead


async def test_model_is_part_of_the_key(csim: Sim, http: aiohttp.ClientSession) -> None:
    await _usage(csim, http, _payload(_marked(LONG)))
    other = await _usage(csim, http, {**_payload(_marked(LONG)), "model": "claude-opus-4-8"})
    assert other["cache_read_input_tokens"] == 0


async def test_cache_warm_with_max_tokens_zero(csim: Sim, http: aiohttp.ClientSession) -> None:
    payload = _payload(_marked(LONG), max_tokens=0)
    warm = await _usage(csim, http, payload, NEW_VERSION)
    assert warm["output_tokens"] == 0
    assert warm["cache_creation_input_tokens"] > 0
    hit = await _usage(csim, http, {**payload, "max_tokens": 50}, NEW_VERSION)
    assert hit["cache_read_input_tokens"] == warm["cache_creation_input_tokens"]


async def test_stream_message_start_has_cache_usage(csim: Sim, http: aiohttp.ClientSession) -> None:
    payload = _payload(_marked(LONG))
    await _usage(csim, http, payload)
    async with http.post(
        f"{csim.url}/v1/messages", headers=headers(), json={**payload, "stream": True}
    ) as resp:
        raw = await resp.text()
    start = raw.split("\n\n")[0]
    assert '"cache_read_input_tokens":' in start
    assert '"cache_read_input_tokens":0' not in start


def test_lookback_and_mixed_ttls() -> None:
    clock = FakeClock()
    cache = PromptCache(clock, 300, 3600)
    units = [PromptUnit(f"u{i}".encode(), 300, None) for i in range(6)]
    units[1] = PromptUnit(b"u1", 300, {"type": "ephemeral", "ttl": "1h"})
    units[5] = PromptUnit(b"u5", 300, {"type": "ephemeral"})
    usage = cache.account("m", units, None, 500)
    assert (usage.write_1h, usage.write_5m) == (600, 1200)
    assert usage.input_tokens == 3  # the request overhead is never cached
    clock.advance(400)  # the 5m entry is gone, the 1h one is found by looking back
    again = cache.account("m", units, None, 500)
    assert again.cache_read == 600
    assert again.write_5m == 1200


def test_one_hour_after_five_minutes_rejected() -> None:
    cache = PromptCache(FakeClock(), 300, 3600)
    units = [
        PromptUnit(b"a", 10, {"type": "ephemeral"}),
        PromptUnit(b"b", 10, {"type": "ephemeral", "ttl": "1h"}),
    ]
    with pytest.raises(InvalidRequest, match="1h"):
        cache.account("m", units, None, 1)


def test_a_write_is_prefilled_a_read_is_not() -> None:
    """What the latency model charges: a cache write costs the model a full prefill."""
    cache = PromptCache(FakeClock(), 300, 3600)
    units = [PromptUnit(b"doc", 1000, {"type": "ephemeral"}), PromptUnit(b"q", 10, None)]
    write = cache.account("m", units, None, 500)
    read = cache.account("m", units, None, 500)
    assert (write.prefilled, write.cache_read) == (1013, 0)
    assert (read.prefilled, read.cache_read) == (13, 1000)


async def _first_token_seconds(sim: Sim, http: aiohttp.ClientSession, payload: Any) -> float:
    began = time.monotonic()
    async with http.post(
        f"{sim.url}/v1/messages", headers=headers(), json={**payload, "stream": True}
    ) as resp:
        async for line in resp.content:
            if line.startswith(b"event: content_block_delta"):
                return time.monotonic() - began
    raise AssertionError("no content")


async def test_a_cache_read_comes_to_the_first_token_sooner(
    start_sim: StartSim, http: aiohttp.ClientSession
) -> None:
    """Real time: writing the prefix costs its prefill, reading it back a tenth of that."""
    slow_prefill = LatencyModel(
        base_ttft=0.01, per_input_token=0.0001, per_cached_token=0.00001, per_output_token=0.0
    )
    sim = await start_sim(speed=1.0, latency=slow_prefill)
    payload = _payload(_marked(LONG))  # 1301 tokens: 0.13 s to prefill, 0.013 s to read
    write = await _first_token_seconds(sim, http, payload)
    read = await _first_token_seconds(sim, http, payload)
    assert write >= 0.13
    assert read < 0.5 * write
