"""Fixtures: the simulator as a real HTTP server on a free loopback port, and clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest
from aiohttp import web

from claude_proxy.sim import SimSettings, create_sim_app
from claude_proxy.sim.state import STATE, SimState

MODEL = "claude-haiku-4-5"  # accepts prefill and sampling: the permissive model
NEW_MODEL = "claude-sonnet-4-6"  # refuses prefill
OLD_VERSION = "2023-06-01"
NEW_VERSION = "2026-10-21"


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Sim:
    url: str
    app: web.Application

    @property
    def state(self) -> SimState:
        return self.app[STATE]

    def client(self, **kwargs: Any) -> anthropic.AsyncAnthropic:
        kwargs.setdefault("api_key", "test-key")
        kwargs.setdefault("max_retries", 0)
        return anthropic.AsyncAnthropic(base_url=self.url, **kwargs)


StartSim = Callable[..., Awaitable[Sim]]


@pytest.fixture
async def start_sim() -> AsyncIterator[StartSim]:
    runners: list[web.AppRunner] = []

    async def start(**settings: Any) -> Sim:
        settings.setdefault("speed", 0.0)
        app = create_sim_app(SimSettings(**settings))
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return Sim(f"http://127.0.0.1:{port}", app)

    yield start
    for runner in runners:
        await runner.cleanup()


@pytest.fixture
async def sim(start_sim: StartSim) -> Sim:
    return await start_sim()


@pytest.fixture
async def client(sim: Sim) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with sim.client() as c:
        yield c


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def headers(version: str = OLD_VERSION, **extra: str) -> dict[str, str]:
    """Raw request headers: old-style key, given version, plus x-sim-* knobs."""
    out = {
        "x-api-key": "test-key",
        "anthropic-version": version,
        "content-type": "application/json",
    }
    out.update({k.replace("_", "-"): v for k, v in extra.items()})
    return out


def body(text: str = "Hello there", **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1024,
        "messages": [{"role": "user", "content": text}],
    }
    out.update(fields)
    return out


def parse_sse(raw: str) -> list[tuple[str, dict[str, Any]]]:
    """Strict SSE parsing: every event is exactly `event:` + `data:` + blank line."""
    events: list[tuple[str, dict[str, Any]]] = []
    assert raw.endswith("\n\n") or raw == ""
    for chunk in raw.split("\n\n"):
        if not chunk:
            continue
        lines = chunk.split("\n")
        assert len(lines) == 2, chunk
        assert lines[0].startswith("event: ")
        assert lines[1].startswith("data: ")
        name = lines[0][len("event: ") :]
        data = orjson.loads(lines[1][len("data: ") :])
        assert data["type"] == name
        events.append((name, data))
    return events
