"""Automatic prompt caching: time to first token and input-token cost, with and without.

    python benchmarks/caching.py              # about a minute
    python benchmarks/caching.py --rounds 1

The simulator runs with its default latency model (160 ms + 20 us per input token
prefilled, 2 us per token read from the cache, 1 ms per output token; a cache write is
prefilled like uncached input), the gateway with its defaults (prompt caching on, 5m),
both in this process on loopback; the client streams every call and times the first
text delta. "Without" is the same gateway with ``x-proxy-prompt-cache: off`` (the body
goes upstream as the client sent it); both modes run in every round, with a prompt of
their own (a nonce), so neither reads what the other wrote and each round starts cold.

- ``conversation``: a 20-turn chat on Sonnet 4.5 (a 2,000-token system prompt, user
  turns of ~150 tokens, answers of at most 64), each turn sent with the whole history,
  as clients do. TTFT: the median over its 20 turns, and the 20th turn's.
- ``document``: a 30,000-token document (a text ``document`` block) and five different
  questions about it, asked one after another, each sent with the document. TTFT: the
  median over the five asks, and over the four after the first.

Input-token cost in units of one uncached input token: input 1x, cache write 1.25x
(5m) or 2x (1h), cache read 0.1x, from the usage the simulator reports. Ratios are
with / without, per round; the tables give the median of the rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from claude_proxy.app import create_app  # noqa: E402
from claude_proxy.config import LogSettings, Settings, UpstreamSettings  # noqa: E402
from claude_proxy.server import RunningServer, start_server  # noqa: E402
from claude_proxy.sim import SimSettings, create_sim_app  # noqa: E402
from claude_proxy.sim.bpe import text_tokens  # noqa: E402

KEY = "sk-ant-bench-caching"
MODEL = "claude-sonnet-4-5"
HEADERS = {"x-api-key": "client", "anthropic-version": "2023-06-01"}
OFF = {"x-proxy-prompt-cache": "off"}
TURNS = 20
QUESTIONS = (
    "Who is the report addressed to?",
    "What does the third section recommend?",
    "Which figures are quoted for the harbour?",
    "List the risks the authors name.",
    "Summarise the conclusion in two sentences.",
)
PRICE = {"input": 1.0, "write_5m": 1.25, "write_1h": 2.0, "read": 0.1}


def prose(tokens: int, topic: str) -> str:
    """English prose of about ``tokens`` simulator tokens."""
    sentence = (
        f"The {topic} survey recorded tides, cargo volumes and berth occupancy, and the "
        "engineers compared them with the plans drawn up the year before. "
    )
    per = text_tokens(sentence)
    return sentence * max(1, tokens // per)


@dataclass
class Call:
    ttft: float
    usage: dict[str, Any]
    text: str
    report: str | None

    @property
    def cost(self) -> float:
        usage, split = self.usage, self.usage.get("cache_creation") or {}
        write_1h = split.get("ephemeral_1h_input_tokens", 0)
        write_5m = usage.get("cache_creation_input_tokens", 0) - write_1h
        return (
            usage["input_tokens"] * PRICE["input"]
            + write_5m * PRICE["write_5m"]
            + write_1h * PRICE["write_1h"]
            + usage.get("cache_read_input_tokens", 0) * PRICE["read"]
        )

    @property
    def tokens(self) -> int:
        usage = self.usage
        return int(
            usage["input_tokens"]
            + usage.get("cache_creation_input_tokens", 0)
            + usage.get("cache_read_input_tokens", 0)
        )


async def stream(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], headers: dict[str, str]
) -> Call:
    """One streamed call: time to its first text delta, its usage and its text."""
    started = time.perf_counter()
    ttft = None
    usage: dict[str, Any] = {}
    parts: list[str] = []
    async with http.post(
        f"{url}/v1/messages", json={**body, "stream": True}, headers={**HEADERS, **headers}
    ) as response:
        if response.status != 200:
            raise RuntimeError(f"{response.status}: {await response.text()}")
        report = response.headers.get("x-proxy-prompt-cache")
        async for line in response.content:
            if not line.startswith(b"data: "):
                continue
            event = orjson.loads(line[6:])
            if event["type"] == "message_start":
                usage = event["message"]["usage"]
            elif event["type"] == "content_block_delta" and event["delta"]["type"] == "text_delta":
                if ttft is None:
                    ttft = time.perf_counter() - started
                parts.append(event["delta"]["text"])
    if ttft is None:
        raise RuntimeError("the answer had no text")
    return Call(ttft, usage, "".join(parts), report)


@dataclass
class Run:
    calls: list[Call] = field(default_factory=list)

    @property
    def ttft(self) -> float:
        return statistics.median(call.ttft for call in self.calls)

    @property
    def ttft_last(self) -> float:
        return self.calls[-1].ttft

    @property
    def ttft_repeat(self) -> float:
        return statistics.median(call.ttft for call in self.calls[1:])

    @property
    def cost(self) -> float:
        return sum(call.cost for call in self.calls)

    @property
    def tokens(self) -> int:
        return sum(call.tokens for call in self.calls)


async def conversation(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Run:
    nonce = uuid.uuid4().hex
    system = f"Session {nonce}. You are a port authority assistant. " + prose(2000, "port")
    messages: list[dict[str, Any]] = []
    run = Run()
    for turn in range(TURNS):
        question = f"Turn {turn}: " + prose(150, f"berth {turn}") + " What changed?"
        messages.append({"role": "user", "content": question})
        body = {"model": MODEL, "max_tokens": 64, "system": system, "messages": messages}
        call = await stream(http, url, body, headers)
        run.calls.append(call)
        messages.append({"role": "assistant", "content": call.text.rstrip() or "Noted."})
    return run


async def document(http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> Run:
    nonce = uuid.uuid4().hex
    source = {"type": "text", "media_type": "text/plain",
              "data": f"Report {nonce}.\n" + prose(30_000, "harbour")}  # fmt: skip
    run = Run()
    for question in QUESTIONS:
        content = [{"type": "document", "source": source}, {"type": "text", "text": question}]
        body = {"model": MODEL, "max_tokens": 64,
                "messages": [{"role": "user", "content": content}]}  # fmt: skip
        run.calls.append(await stream(http, url, body, headers))
    return run


SCENARIOS = {"conversation": conversation, "document": document}


async def measure(rounds: int) -> dict[str, list[tuple[Run, Run]]]:
    sim = await start_server(create_sim_app(SimSettings(api_key=KEY)), "127.0.0.1", 0)
    settings = Settings(
        upstreams=[UpstreamSettings(name="sim", base_url=sim.url, api_key=KEY)],
        log=LogSettings(level="warning"),  # no request log lines among the tables
    )
    gateway: RunningServer = await start_server(create_app(settings), "127.0.0.1", 0)
    results: dict[str, list[tuple[Run, Run]]] = {name: [] for name in SCENARIOS}
    try:
        async with aiohttp.ClientSession() as http:
            for index in range(rounds):
                for name, scenario in SCENARIOS.items():
                    # Alternate which mode goes first, so neither always has a warm process.
                    if index % 2:
                        off = await scenario(http, gateway.url, OFF)
                        on = await scenario(http, gateway.url, {})
                    else:
                        on = await scenario(http, gateway.url, {})
                        off = await scenario(http, gateway.url, OFF)
                    results[name].append((on, off))
                    print(
                        f"  round {index + 1}/{rounds} {name}: TTFT {on.ttft * 1000:.0f} ms "
                        f"with, {off.ttft * 1000:.0f} ms without ({on.calls[-1].report})",
                        file=sys.stderr,
                    )
    finally:
        await gateway.stop()
        await sim.stop()
    return results


def _median(values: list[float]) -> float:
    return statistics.median(values)


def report(results: dict[str, list[tuple[Run, Run]]], rounds: int) -> None:
    print(
        f"Prompt caching through the gateway, simulator latency model, {MODEL}, "
        f"median of {rounds} round(s):\n"
    )
    print("| scenario | calls | input tokens | caching | TTFT median | TTFT, "
          "last / repeat asks | input cost (units) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for name, pairs in results.items():
        for label, pick in (("automatic", 0), ("off", 1)):
            runs = [pair[pick] for pair in pairs]
            later = [r.ttft_last if name == "conversation" else r.ttft_repeat for r in runs]
            print(
                f"| {name} | {len(runs[0].calls)} | {_median([r.tokens for r in runs]):,.0f} "
                f"| {label} | {_median([r.ttft for r in runs]) * 1000:.0f} ms "
                f"| {_median(later) * 1000:.0f} ms | {_median([r.cost for r in runs]):,.0f} |"
            )
    print("\nWith automatic caching / without, per round, median of the rounds:\n")
    print("| scenario | TTFT median | TTFT, last / repeat asks | input cost |")
    print("|---|---|---|---|")
    for name, pairs in results.items():
        ttft = _median([on.ttft / off.ttft for on, off in pairs])
        if name == "conversation":
            later = _median([on.ttft_last / off.ttft_last for on, off in pairs])
        else:
            later = _median([on.ttft_repeat / off.ttft_repeat for on, off in pairs])
        cost = _median([on.cost / off.cost for on, off in pairs])
        print(
            f"| {name} | {ttft:.2f}x ({1 - ttft:.0%} lower) | {later:.2f}x ({1 - later:.0%} "
            f"lower) | {cost:.2f}x ({1 - cost:.0%} lower) |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    opts = parser.parse_args()
    results = asyncio.run(measure(opts.rounds))
    report(results, opts.rounds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
