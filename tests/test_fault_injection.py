"""The issue's acceptance figure: 1,000 calls through a 20 % upstream fault rate.

Half stream, half not, the SDK's own retries off. At least 99.5 % must succeed
with text exactly equal to the fault-free answer; the rest must fail with an
error, never with wrong text. The extra upstream load is printed (run with -s).
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import anthropic

from claude_proxy.config import RetrySettings
from tests.conftest import SIM_KEY, StartGateway, StartSim

CALLS = 1000
CONCURRENCY = 50
FAULT_RATE = 0.2
KINDS = ("p_429", "p_529", "p_500", "p_reset", "p_cut", "p_stream_error")


async def answer(client: anthropic.AsyncAnthropic, i: int) -> str:
    params: dict[str, Any] = {
        "model": "claude-haiku-4-5" if i % 4 else "claude-sonnet-4-6",
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": f"Question number {i}: tell me something."}],
    }
    if i % 2:
        async with client.messages.stream(**params) as stream:
            message = await stream.get_final_message()
    else:
        message = await client.messages.create(**params)
    return "".join(block.text for block in message.content if block.type == "text")


def describe_mismatch(i: int, expected: str, got: str) -> str:
    at = next((k for k, (a, b) in enumerate(zip(expected, got, strict=False)) if a != b), None)
    at = min(len(expected), len(got)) if at is None else at
    return (
        f"call {i} ({'stream' if i % 2 else 'json'}): {len(got)} chars, expected "
        f"{len(expected)}; differs at {at}: expected {expected[at - 20 : at + 40]!r}, "
        f"got {got[at - 20 : at + 40]!r}"
    )


async def test_twenty_percent_upstream_faults(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    from claude_proxy.sim import FaultRates

    rates = FaultRates(**{kind: FAULT_RATE / len(KINDS) for kind in KINDS})
    faulty = await start_sim(faults=rates, seed=7, retry_after=0.1)
    clean = await start_sim()
    gateway = await start_gateway(faulty.url, retry=RetrySettings())

    through_gateway = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="k", max_retries=0)
    direct = anthropic.AsyncAnthropic(base_url=clean.url, api_key=SIM_KEY, max_retries=0)
    limit = asyncio.Semaphore(CONCURRENCY)

    mismatches: list[str] = []

    async def one(i: int) -> str:
        async with limit:
            expected = await answer(direct, i)
            try:
                got = await answer(through_gateway, i)
            except anthropic.APIError:
                return "error"
            if got == expected:
                return "ok"
            mismatches.append(describe_mismatch(i, expected, got))
            return "wrong"

    outcomes = await asyncio.gather(*(one(i) for i in range(CALLS)))
    async with aiohttp.ClientSession() as http, http.get(f"{faulty.url}/sim/stats") as r:
        stats = await r.json()

    ok, wrong = outcomes.count("ok"), outcomes.count("wrong")
    print(
        f"\nfault injection: {ok}/{CALLS} exact, {outcomes.count('error')} errors, {wrong} wrong; "
        f"upstream attempts {stats['requests']} ({stats['requests'] / CALLS:.3f} per call), "
        f"faults injected {stats['faults_total']} "
        f"({stats['faults_total'] / stats['requests']:.1%} of attempts)"
    )
    assert wrong == 0, "\n".join(mismatches)
    assert ok >= 0.995 * CALLS
    assert stats["faults_total"] >= 0.15 * stats["requests"]  # the faults really happened
