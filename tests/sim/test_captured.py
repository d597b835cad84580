"""Requests real clients sent, captured through the gateway, answered by the simulator as the
API answers them. ``captured/`` holds them with long texts shortened; add a file when a
client sends a new shape."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from .conftest import Sim, parse_sse

CAPTURED: dict[str, dict[str, Any]] = {
    path.stem: json.loads(path.read_text())
    for path in sorted((Path(__file__).parent / "captured").glob("*.json"))
}


@pytest.mark.parametrize("name", CAPTURED)
async def test_a_captured_request_is_answered(
    sim: Sim, http: aiohttp.ClientSession, name: str
) -> None:
    request = CAPTURED[name]
    headers = {**request["headers"], "x-api-key": "k", "content-type": "application/json"}
    async with http.post(sim.url + request["path"], json=request["body"], headers=headers) as r:
        text = await r.text()
        assert r.status == 200, text
    events = parse_sse(text)
    assert events[0][0] == "message_start" and events[-1][0] == "message_stop"
    assert request["body"]["model"] == events[0][1]["message"]["model"]
