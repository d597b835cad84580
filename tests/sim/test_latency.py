"""The latency model: the pure computation, and one tiny real-time check."""

from __future__ import annotations

import time

import aiohttp
import pytest

from claude_proxy.sim.latency import per_output_token, time_to_first_token, total_time
from claude_proxy.sim.settings import LatencyModel

from .conftest import StartSim, body, headers

MODEL = LatencyModel()


@pytest.mark.parametrize(("max_tokens", "expected"), [(256, 0.42), (512, 0.68), (1024, 1.2)])
def test_design_table(max_tokens: int, expected: float) -> None:
    """Long answers cut at max_tokens take what the design note measured."""
    assert total_time(MODEL, 1.0, 100, 0, max_tokens) == pytest.approx(expected, abs=0.03)


def test_cached_input_is_faster() -> None:
    uncached = time_to_first_token(MODEL, 1.0, 100_000, 0)
    cached = time_to_first_token(MODEL, 1.0, 0, 100_000)
    assert uncached == pytest.approx(0.16 + 2.0)
    assert cached == pytest.approx(0.16 + 0.2)


def test_speed_scales_and_zero_disables() -> None:
    assert total_time(MODEL, 0.5, 0, 0, 100) == pytest.approx(0.5 * 0.26)
    assert total_time(MODEL, 0.0, 10**6, 10**6, 10**5) == 0.0
    assert per_output_token(MODEL, 2.0) == pytest.approx(0.002)


async def test_stream_first_token_and_pacing(start_sim: StartSim) -> None:
    fast = LatencyModel(
        base_ttft=0.05, per_input_token=0.0, per_cached_token=0.0, per_output_token=0.001
    )
    sim = await start_sim(speed=1.0, latency=fast)
    arrivals: list[float] = []
    began = time.monotonic()
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            f"{sim.url}/v1/messages",
            headers=headers(x_sim_answer_tokens="100"),
            json={**body(), "stream": True},
        ) as resp,
    ):
        async for line in resp.content:
            if line.startswith(b"event: content_block_delta"):
                arrivals.append(time.monotonic() - began)
    assert arrivals[0] >= 0.045  # first token waits for the ttft
    assert 0.14 <= arrivals[-1] < 1.0  # ttft + 100 tokens x 1 ms, tolerant upper bound
