"""Long documents: map-reduce wall time against a sequential pass, splitter speed, estimator error.

    python benchmarks/documents.py            # about a minute
    python benchmarks/documents.py --rounds 1

The simulator runs with its default latency model (about 160 ms + 1 ms per output
token), the gateway with its defaults (a window of 64 calls: every chunk is admitted at
once), both in this process on loopback. Each round:

- ``map-reduce``: ``POST /v1/documents`` for a 100,000-character Chinese/English
  document (chunks of 4,000 estimated tokens);
- ``sequential``: the same map calls (their bodies, taken from the simulator's journal),
  one after another through ``/v1/messages``, then the same reduce call; this also gives
  each call's own latency, for the target below;
- ``one call``: the instruction and the whole document in a single call (it fits the
  context here; a longer document would not).

Target: map-reduce wall time <= 1.5 x (the slowest single map call + the reduce call),
both measured in the same round. Then the splitter's speed per script, and the token
estimator's error per script (``benchmarks/estimate.py`` has the details).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(HERE)]

import estimate  # noqa: E402  (benchmarks/estimate.py: corpora and the error measure)
from tests.documents.test_split import mixed_document  # noqa: E402

from claude_proxy.app import create_app  # noqa: E402
from claude_proxy.config import LogSettings, Settings, UpstreamSettings  # noqa: E402
from claude_proxy.documents import split_document  # noqa: E402
from claude_proxy.server import start_server  # noqa: E402
from claude_proxy.sim import JOURNAL, SimSettings, create_sim_app  # noqa: E402

KEY = "sk-ant-bench-documents"
HEADERS = {"x-api-key": "client", "anthropic-version": "2023-06-01"}
DOCUMENT_CHARS = 100_000
TARGET = 1.5


async def _timed_post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    async with http.post(url, json=body, headers=HEADERS) as response:
        data = await response.json()
        if response.status != 200:
            raise RuntimeError(f"{url}: {response.status} {data}")
    return time.perf_counter() - started, data


async def one_round(http: aiohttp.ClientSession, gateway: str, sim: Any) -> dict[str, float]:
    document = mixed_document(DOCUMENT_CHARS)
    instruction = "Summarise the main points of this document."
    journal = sim.runner.app[JOURNAL]
    journal.clear()
    body = {
        "model": "claude-haiku-4-5",
        "document": document,
        "instruction": instruction,
        "chunk_tokens": 4000,
        "overlap_tokens": 200,
        "max_tokens": 300,
    }
    wall, answer = await _timed_post(http, f"{gateway}/v1/documents", body)
    calls = [entry.body for entry in journal.entries]
    maps, reduce = calls[:-1], calls[-1]
    map_times = []
    for map_body in maps:
        seconds, _ = await _timed_post(http, f"{gateway}/v1/messages", map_body)
        map_times.append(seconds)
    reduce_time, _ = await _timed_post(http, f"{gateway}/v1/messages", reduce)
    single = {
        "model": "claude-haiku-4-5",
        "max_tokens": 300,
        "messages": [{"role": "user", "content": f"{instruction}\n\n{document}"}],
    }
    one_call, _ = await _timed_post(http, f"{gateway}/v1/messages", single)
    return {
        "chunks": float(answer["document"]["chunks"]),
        "map-reduce": wall,
        "sequential": sum(map_times) + reduce_time,
        "one call": one_call,
        "slowest map": max(map_times),
        "reduce": reduce_time,
        "bound": max(map_times) + reduce_time,
    }


async def wall_times(rounds: int) -> list[dict[str, float]]:
    sim = await start_server(create_sim_app(SimSettings(api_key=KEY, journal=1000)), "127.0.0.1", 0)
    settings = Settings(
        upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=KEY)],
        log=LogSettings(level="warning"),  # no request log lines among the tables
    )
    gateway = await start_server(create_app(settings), "127.0.0.1", 0)
    results = []
    try:
        async with aiohttp.ClientSession() as http:
            for index in range(rounds):
                result = await one_round(http, gateway.url, sim)
                results.append(result)
                print(
                    f"  round {index + 1}/{rounds}: map-reduce {result['map-reduce']:.2f} s, "
                    f"bound {result['bound']:.2f} s",
                    file=sys.stderr,
                )
    finally:
        await gateway.stop()
        await sim.stop()
    return results


def splitter_speeds() -> list[tuple[str, float, int]]:
    texts = {
        "English prose": estimate.corpora()["English prose (simulator)"],
        "Chinese": estimate.CHINESE,
        "Chinese/English mixed": mixed_document(200_000),
        "README (Markdown, code)": (ROOT / "README.md").read_text(),
    }
    rows = []
    for name, text in texts.items():
        text = (text * (1_000_000 // len(text) + 1))[:1_000_000]
        times = []
        for _ in range(5):
            started = time.perf_counter()
            chunks = split_document(text, 4000, 200)
            times.append(time.perf_counter() - started)
        rows.append((name, len(text.encode()) / statistics.median(times) / 1e6, len(chunks)))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    results = asyncio.run(wall_times(opts.rounds))

    def median(key: str) -> float:
        return statistics.median(r[key] for r in results)

    print(
        f"Wall time for a {DOCUMENT_CHARS:,}-character Chinese/English document "
        f"({median('chunks'):.0f} chunks of 4,000 tokens), simulator latency model, "
        f"median of {opts.rounds} rounds:\n"
    )
    print("| how | seconds | vs map-reduce |\n|---|---|---|")
    for key in ("map-reduce", "sequential", "one call", "slowest map", "reduce"):
        print(f"| {key} | {median(key):.2f} | {median(key) / median('map-reduce'):.2f}x |")
    ratios = [r["map-reduce"] / r["bound"] for r in results]
    ratio = statistics.median(ratios)

    print("\nSplitter (chunks of 4,000 estimated tokens, overlap 200), 1 MB of each:\n")
    print("| text | MB/s | chunks |\n|---|---|---|")
    for name, mbs, chunks in splitter_speeds():
        print(f"| {name} | {mbs:.1f} | {chunks} |")

    print("\nToken estimator against the simulator's tokenizer (estimate / true):\n")
    print("| text | whole text | median fragment | lowest | fragments under |")
    print("|---|---|---|---|---|")
    rng = estimate.random.Random(1)
    for name, corpus in estimate.corpora().items():
        whole, mid, lowest, under = estimate.measure(corpus, rng)
        print(f"| {name} | {whole:.2f}x | {mid:.2f}x | {lowest:.2f}x | {under:.1%} |")

    ok = ratio <= TARGET
    print(
        f"\n{'PASS' if ok else 'FAIL'}  map-reduce wall time <= {TARGET}x (slowest map call + "
        f"reduce call): {ratio:.2f}x (per round: {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
