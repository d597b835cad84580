"""SIGTERM drains: readiness turns off, in-flight streams finish, then the process exits."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp

from tests.conftest import SIM_KEY, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.processes import read_url
from tests.sse import parse_events


async def test_sigterm_drains_in_flight_streams(start_sim: StartSim, tmp_path: Path) -> None:
    sim = await start_sim(speed=1.0)  # ~1 ms per token: the stream below lasts ~1 s
    config = tmp_path / "gateway.yaml"
    config.write_text("shutdown: {unready_delay: 0.3, drain_seconds: 20}\n")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "claude_proxy", "serve", "--config", str(config),
        "--port", "0", "--upstream", sim.url,
        env={**os.environ, "ANTHROPIC_API_KEY": SIM_KEY}, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stderr is not None
    url = await read_url(process.stderr, b"listening on")
    body = message_body("Drain me", stream=True, max_tokens=2000)
    headers = {**API_HEADERS, "x-sim-answer-tokens": "1000"}
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{url}/v1/messages", json=body, headers=headers) as r:
            first = await r.content.readany()
            process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(5):
                while True:  # bounded: the unready delay is 0.3 s
                    async with (
                        aiohttp.ClientSession() as probe,
                        probe.get(f"{url}/readyz") as ready,
                    ):
                        if ready.status == 503:
                            break
                    await asyncio.sleep(0.02)
            rest = await r.read()
        events = parse_events(first + rest)
        assert events[-1][0] == "message_stop"
        assert "error" not in [name for name, _ in events]
    async with asyncio.timeout(20):
        assert await process.wait() == 0
