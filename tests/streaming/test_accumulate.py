"""A stream folded into a message equals what the same call returns whole."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from claude_proxy.server import RunningServer
from claude_proxy.streaming.accumulate import Accumulator, StreamFailed
from claude_proxy.streaming.sse import EventSplitter
from tests.conftest import SIM_KEY
from tests.helpers import API_HEADERS, message_body
from tests.sse import without_ids

TOOL = {
    "name": "lookup",
    "input_schema": {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["q", "n"],
    },
}


@pytest.mark.parametrize(
    "fields",
    [
        {},
        {"tools": [TOOL], "tool_choice": {"type": "any"}},
        {"max_tokens": 4000, "thinking": {"type": "enabled", "budget_tokens": 1024}},
        {"max_tokens": 9},
    ],
    ids=["text", "tool_use", "thinking", "max_tokens"],
)
async def test_a_folded_stream_is_the_message_the_api_returns(
    sim: RunningServer, http: aiohttp.ClientSession, fields: dict[str, Any]
) -> None:
    headers = {**API_HEADERS, "x-api-key": SIM_KEY}
    body = message_body("Fold me", **fields)
    async with http.post(f"{sim.url}/v1/messages", json=body, headers=headers) as r:
        whole = await r.json()
    async with http.post(
        f"{sim.url}/v1/messages", json={**body, "stream": True}, headers=headers
    ) as r:
        raw = await r.read()
    accumulator = Accumulator()
    splitter = EventSplitter()
    for chunk in (raw[i : i + 97] for i in range(0, len(raw), 97)):
        accumulator.feed(splitter.feed(chunk))
    assert accumulator.done
    assert without_ids(accumulator.message) == without_ids(whole)


def test_an_error_event_is_the_answer() -> None:
    accumulator = Accumulator()
    splitter = EventSplitter()
    events = splitter.feed(
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"}}\n\n'
    )
    with pytest.raises(StreamFailed) as failed:
        accumulator.feed(events)
    assert (failed.value.status, failed.value.error_type) == (529, "overloaded_error")
