"""The latency model as pure functions, plus a pacer that sleeps on the event loop."""

from __future__ import annotations

import asyncio

from claude_proxy.sim.settings import LatencyModel

__all__ = ["Pacer", "per_output_token", "time_to_first_token", "total_time"]

# Sleeps shorter than this are merged into the next one: asyncio timers cannot do better.
_MIN_SLEEP = 0.001


def time_to_first_token(model: LatencyModel, speed: float, uncached: int, cached: int) -> float:
    """Seconds before the first output token.

    ``uncached``: input the model prefills now, including what it writes to the cache;
    ``cached``: input read from the cache, ten times cheaper (the API's claim of up to
    85% lower time to first token on long prompts).
    """
    return speed * (
        model.base_ttft + uncached * model.per_input_token + cached * model.per_cached_token
    )


def per_output_token(model: LatencyModel, speed: float) -> float:
    return speed * model.per_output_token


def total_time(
    model: LatencyModel, speed: float, uncached: int, cached: int, output_tokens: int
) -> float:
    """Seconds for a whole non-streamed reply."""
    return time_to_first_token(model, speed, uncached, cached) + output_tokens * per_output_token(
        model, speed
    )


class Pacer:
    """Sleeps until token n is 'generated': start + ttft + n * per_token (no drift)."""

    def __init__(self, ttft: float, per_token: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._start = self._loop.time()
        self._ttft = ttft
        self._per_token = per_token
        self._enabled = ttft > 0 or per_token > 0

    async def until(self, tokens_done: int) -> None:
        if not self._enabled:
            return
        target = self._start + self._ttft + tokens_done * self._per_token
        delay = target - self._loop.time()
        if delay >= _MIN_SLEEP:
            await asyncio.sleep(delay)
