"""The response cache: latency of a hit against a miss, JSON and streamed, memory and Redis.

    python benchmarks/response_cache.py              # about 20 s
    python benchmarks/response_cache.py --runs 3

The simulator runs with its default latency model (about 160 ms to the first token, then
1 ms per output token; answers of 40 to 300 tokens), the gateway in front of it with the
cache on (``temperature: 0`` requests), both in this process on loopback, as the client.
Each run asks a question not asked before (a miss: it goes upstream and is stored), then
the same question again (a hit). Figures are medians over the runs: total time to the
last byte, and for streams the time to the first content event (``content_block_delta``).
Redis is the one on 127.0.0.1:6379 (its rows are left out, and say so, without it); the
keys written are deleted afterwards.

Then what the cache adds to a miss: the simulator at speed 0 (no model latency), each
request a new question, through a gateway with the cache off and one with it on (same
store for the state), interleaved; median time to the last byte of ``--misses`` requests.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from typing import Any

import aiohttp
import redis
from redis.exceptions import RedisError

from claude_proxy.app import create_app
from claude_proxy.config import LogSettings, Settings, UpstreamSettings
from claude_proxy.response_cache import ResponseCacheSettings
from claude_proxy.server import RunningServer, start_server
from claude_proxy.sim import SimSettings, create_sim_app

KEY = "sk-ant-bench-response-cache"
HEADERS = {"x-api-key": "client", "anthropic-version": "2023-06-01"}
REDIS_URL = "redis://127.0.0.1:6379/0"
CACHE_HEADER = "x-proxy-response-cache"


async def timed(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[str, float, float | None, int]:
    """The cache's verdict, seconds to the last byte and to the first text delta (streams),
    and the answer's size in bytes."""
    started = time.perf_counter()
    first: float | None = None
    size = 0
    async with http.post(f"{url}/v1/messages", json=body, headers=HEADERS) as response:
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {await response.text()}")
        seen = b""
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if first is None and body.get("stream"):
                seen += chunk
                if b"content_block_delta" in seen:
                    first = time.perf_counter() - started
        return response.headers[CACHE_HEADER], time.perf_counter() - started, first, size


async def measure(url: str, runs: int, stream: bool) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {
        "miss": [],
        "hit": [],
        "miss_ttft": [],
        "hit_ttft": [],
        "bytes": [],
    }
    async with aiohttp.ClientSession() as http:
        for _ in range(runs):
            body = {
                "model": "claude-haiku-4-5",
                "max_tokens": 512,
                "temperature": 0,
                "stream": stream,
                "messages": [{"role": "user", "content": f"Question {uuid.uuid4().hex}"}],
            }
            for expected in ("miss", "hit"):
                verdict, seconds, first, size = await timed(http, url, body)
                if verdict != expected:
                    raise RuntimeError(f"expected a {expected}, the gateway said {verdict}")
                results[expected].append(seconds)
                if expected == "hit":
                    results["bytes"].append(size)
                if first is not None:
                    results[f"{expected}_ttft"].append(first)
    return results


async def gateway_for(
    sim: RunningServer, state: str, prefix: str, *, cache: bool = True
) -> RunningServer:
    settings = Settings(
        upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=KEY)],
        state=state,
        admission={"key_prefix": prefix + "admission:"},
        response_cache=ResponseCacheSettings(enabled=cache, url=state),  # its own store
        log=LogSettings(level="warning"),  # no request log lines among the tables
    )
    return await start_server(create_app(settings), "127.0.0.1", 0)


def redis_up() -> bool:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=0.5)
    try:
        return bool(client.ping())
    except (RedisError, OSError):
        return False
    finally:
        client.close()


def delete_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


Rows = list[tuple[str, str, dict[str, list[float]]]]


async def run(runs: int, misses: int) -> tuple[Rows, Rows]:
    prefix = f"bench:claude-proxy:{uuid.uuid4().hex}:"
    states = [("memory", "memory://")]
    if redis_up():
        states.append(("Redis", REDIS_URL))
    else:
        print(f"Redis is not reachable at {REDIS_URL}: its rows are left out.", file=sys.stderr)
    try:
        return await hits_and_misses(states, prefix, runs), await miss_cost(states, prefix, misses)
    finally:
        if len(states) > 1:
            delete_keys(prefix)


async def hits_and_misses(states: list[tuple[str, str]], prefix: str, runs: int) -> Rows:
    sim = await start_server(create_sim_app(SimSettings(api_key=KEY)), "127.0.0.1", 0)
    rows = []
    try:
        for name, state in states:
            gateway = await gateway_for(sim, state, prefix)
            try:
                for stream in (False, True):
                    results = await measure(gateway.url, runs, stream)
                    rows.append((name, "stream" if stream else "JSON", results))
            finally:
                await gateway.stop()
    finally:
        await sim.stop()
    return rows


async def miss_cost(states: list[tuple[str, str]], prefix: str, count: int) -> Rows:
    sim = await start_server(create_sim_app(SimSettings(api_key=KEY, speed=0)), "127.0.0.1", 0)
    rows = []
    try:
        async with aiohttp.ClientSession() as http:
            for name, state in states:
                off = await gateway_for(sim, state, prefix, cache=False)
                on = await gateway_for(sim, state, prefix)
                try:
                    for stream in (False, True):
                        times: dict[str, list[float]] = {"off": [], "on": []}
                        for index in range(count):
                            body = {
                                "model": "claude-haiku-4-5",
                                "max_tokens": 512,
                                "temperature": 0,
                                "stream": stream,
                                "messages": [{"role": "user", "content": uuid.uuid4().hex}],
                            }
                            pair = [("off", off), ("on", on)]
                            for label, gateway in pair if index % 2 else pair[::-1]:
                                started = time.perf_counter()
                                async with http.post(
                                    f"{gateway.url}/v1/messages", json=body, headers=HEADERS
                                ) as response:
                                    await response.read()
                                times[label].append(time.perf_counter() - started)
                        rows.append((name, "stream" if stream else "JSON", times))
                finally:
                    await off.stop()
                    await on.stop()
    finally:
        await sim.stop()
    return rows


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}" if values else "-"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--misses", type=int, default=300)
    opts = parser.parse_args()
    rows, costs = asyncio.run(run(opts.runs, opts.misses))
    print(
        f"Latency through the gateway, simulator latency model, median of {opts.runs} runs "
        "(ms; a miss goes upstream, a hit is the same request again):\n"
    )
    print("| store | answer | bytes | miss | hit | miss / hit | TTFT miss | TTFT hit |")
    print("|---|---|---|---|---|---|---|---|")
    for store, kind, results in rows:
        ratio = statistics.median(results["miss"]) / statistics.median(results["hit"])
        print(
            f"| {store} | {kind} | {statistics.median(results['bytes']):,.0f} | "
            f"{ms(results['miss'])} | {ms(results['hit'])} | "
            f"{ratio:.0f}x | {ms(results['miss_ttft'])} | {ms(results['hit_ttft'])} |"
        )
    print(
        f"\nWhat the cache adds to a miss: simulator at speed 0, median of {opts.misses} new "
        "questions each (ms to the last byte):\n"
    )
    print("| store | answer | cache off | cache on (miss) | added |")
    print("|---|---|---|---|---|")
    for store, kind, times in costs:
        off, on = statistics.median(times["off"]), statistics.median(times["on"])
        print(
            f"| {store} | {kind} | {off * 1000:.2f} | {on * 1000:.2f} | {(on - off) * 1000:+.2f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
