"""Stages added to a real gateway: what they change reaches the API and the client, everywhere."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import aiohttp
import orjson
import pytest

from claude_proxy.config import RetrySettings, StreamSettings
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.pipeline.stage import ALL_ROUTES, Stage
from claude_proxy.server import RunningServer
from claude_proxy.services import Services
from claude_proxy.streaming.sse import Event
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.recording import RecordingUpstream
from tests.sse import parse_events


@pytest.fixture
async def recorder() -> AsyncIterator[RecordingUpstream]:
    upstream = RecordingUpstream()
    await upstream.start()
    yield upstream
    await upstream.stop()


class TagUser:
    """Sets metadata.user_id on requests that ask for it with a header."""

    name = "tag_user"
    routes = frozenset({Route.MESSAGES})

    async def on_request(self, call: Call) -> None:
        if "x-tag" in call.headers:
            call.set_body({**call.body, "metadata": {"user_id": call.headers["x-tag"]}})


async def test_the_upstream_gets_the_body_as_the_stages_left_it(
    start_gateway: StartGateway, recorder: RecordingUpstream, http: aiohttp.ClientSession
) -> None:
    assert recorder.server is not None
    gateway = await start_gateway(recorder.server.url, extra_stages=lambda _: [TagUser()])
    raw = (
        b'{"model": "claude-haiku-4-5",  "max_tokens": 5, "future_field": {"a": [1, 2]},\n'
        b'   "messages": [{"role": "user", "content": "hi"}]}'
    )
    async with http.post(f"{gateway.url}/v1/messages", data=raw, headers=API_HEADERS) as r:
        assert r.status == 200
    async with http.post(
        f"{gateway.url}/v1/messages", data=raw, headers={**API_HEADERS, "x-tag": "u-42"}
    ) as r:
        assert r.status == 200
    untouched, edited = recorder.received
    assert untouched.body == raw  # byte for byte: spacing, unknown fields, key order
    sent = orjson.loads(edited.body)
    assert sent["metadata"] == {"user_id": "u-42"}
    assert sent["future_field"] == {"a": [1, 2]}
    assert "x-tag" in edited.headers  # unknown client headers still pass


class Shout:
    """Upper-cases the answer: JSON through on_message, streams one whole block at a time."""

    name = "shout"
    routes = frozenset({Route.MESSAGES})

    async def on_request(self, call: Call) -> None:
        pass

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        for block in message["content"]:
            if block["type"] == "text":
                block["text"] = block["text"].upper()
        return message

    def event_filter(self, call: Call) -> HoldBlocks:
        return HoldBlocks(mark="x-mark" in call.headers)


class HoldBlocks:
    """Holds text deltas back and sends each block's text as one delta at its stop.

    ``mark``: say (with an SSE comment) each time something is held, so a test can see it.
    """

    def __init__(self, mark: bool = False) -> None:
        self._held: list[str] = []
        self._index = 0
        self._mark = mark

    def on_events(self, events: list[Event]) -> list[Event]:
        out: list[Event] = []
        for event in events:
            if event.name == "content_block_delta":
                data = event.json()
                self._index = data["index"]
                self._held.append(data["delta"].get("text", ""))
                if self._mark:
                    out.append(Event("", b": held\n\n"))
                continue
            if event.name in ("content_block_stop", "error"):
                out.extend(self.flush())
            out.append(event)
        return out

    def flush(self) -> list[Event]:
        if not self._held:
            return []
        text, self._held = "".join(self._held).upper(), []
        delta = {"type": "text_delta", "text": text}
        payload = {"type": "content_block_delta", "index": self._index, "delta": delta}
        return [Event.encode("content_block_delta", payload)]


async def test_answer_hooks_change_json_and_streams_and_resumes_replay_what_was_sent(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, extra_stages=lambda _: [Shout()])
    async with http.post(f"{sim.url}/v1/messages", json=message_body(), headers=SIM) as r:
        plain = (await r.json())["content"][0]["text"]
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert (await r.json())["content"][0]["text"] == plain.upper()
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(stream=True), headers=API_HEADERS
    ) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        sent = await r.read()
    deltas = [d for name, d in parse_events(sent) if name == "content_block_delta"]
    assert [d["delta"]["text"] for d in deltas] == [plain.upper()]
    async with http.get(
        f"{gateway.url}/v1/streams/{stream_id}",
        headers={**API_HEADERS, "last-event-id": f"{stream_id}:0"},
    ) as r:
        assert r.status == 200
        assert parse_events(await r.read()) == parse_events(sent)


SIM = {**API_HEADERS, "x-api-key": "sk-ant-test-upstream-key"}


async def test_held_events_are_flushed_into_the_log_when_the_client_abandons_the_stream(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)  # ~1 ms a token: the answer is still coming
    gateway = await start_gateway(
        sim.url, extra_stages=lambda _: [Shout()], streams=StreamSettings(resume_grace=0)
    )
    headers = {**API_HEADERS, "x-sim-answer-tokens": "5000", "x-mark": "1"}
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"{gateway.url}/v1/messages", json=message_body(stream=True), headers=headers
        ) as r,
    ):
        stream_id = r.headers["x-proxy-stream-id"]
        await r.content.readuntil(b": held")  # text is being held back
    # The client left: with no grace the generation stops, flushing what the filter held.
    events: list[tuple[str, dict[str, Any]]] = []
    async with asyncio.timeout(5):
        while not events or events[-1][0] != "error":
            async with http.get(
                f"{gateway.url}/v1/streams/{stream_id}",
                headers={**API_HEADERS, "last-event-id": f"{stream_id}:0"},
            ) as r:
                events = parse_events(await r.read())
    names = [name for name, _ in events]
    assert names[-2:] == ["content_block_delta", "error"]
    text = events[-2][1]["delta"]["text"]
    assert text and text == text.upper()


class Journal:
    """Writes down the route of every call it sees."""

    name = "journal"
    routes = ALL_ROUTES

    def __init__(self) -> None:
        self.routes_seen: list[Route] = []

    async def on_request(self, call: Call) -> None:
        self.routes_seen.append(call.route)


async def test_every_entry_runs_through_the_chain(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    journal = Journal()
    gateway = await start_gateway(sim.url, extra_stages=lambda _: [journal])
    url = gateway.url
    async with http.post(f"{url}/v1/messages", json=message_body(), headers=API_HEADERS) as r:
        await r.read()
    async with http.post(
        f"{url}/v1/messages", json=message_body(stream=True), headers=API_HEADERS
    ) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        await r.read()
    count = {"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": "x"}]}
    async with http.post(f"{url}/v1/messages/count_tokens", json=count, headers=API_HEADERS) as r:
        await r.read()
    async with http.get(f"{url}/v1/models", headers=API_HEADERS) as r:
        await r.read()
    async with http.get(
        f"{url}/v1/streams/{stream_id}", headers={**API_HEADERS, "last-event-id": "0"}
    ) as r:
        await r.read()
    async with http.ws_connect(f"{url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_json({"id": 1, "type": "request", "body": message_body()})
        while (await ws.receive_json())["event"]["type"] != "message_stop":
            pass
    assert journal.routes_seen == [
        Route.MESSAGES,
        Route.MESSAGES,
        Route.COUNT_TOKENS,
        Route.RELAY,
        Route.RESUME,
        Route.WEBSOCKET,
        Route.MESSAGES,
    ]


SUMMARY = CallKey[str]("summary")


class Summarise:
    """Makes a sub-call before the request goes upstream (as a session summary would)."""

    name = "summarise"
    routes = frozenset({Route.MESSAGES})

    def __init__(self, services: Services) -> None:
        self._calls = services.calls

    async def on_request(self, call: Call) -> None:
        if "x-summarise" in call.headers:
            sub = call.subcall(message_body("Summarise", max_tokens=20))
            message = await self._calls.message(sub)
            call.state[SUMMARY] = message["content"][0]["text"]

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        if SUMMARY in call.state:
            message["summary"] = call.state[SUMMARY]
        return message


def summarise(services: Services) -> Sequence[Stage]:
    return [Summarise(services)]


async def test_a_sub_call_waits_in_the_tenants_window_like_any_call(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(speed=1.0)
    tenant = {"name": "team", "keys": ["team-key"], "max_concurrent": 1, "queue_timeout": 0.3}
    gateway = await start_gateway(
        sim.url, extra_stages=summarise, tenants=[tenant], retry=RetrySettings(max_attempts=1)
    )
    headers = {**API_HEADERS, "x-api-key": "team-key"}
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers={**headers, "x-summarise": "1"}
    ) as r:
        assert r.status == 200
        assert (await r.json())["summary"]  # the sub-call answered
    async with (
        aiohttp.ClientSession() as holder,
        holder.post(
            f"{gateway.url}/v1/messages",
            json=message_body(stream=True),
            headers={**headers, "x-sim-answer-tokens": "5000"},
        ) as held,
    ):
        await held.content.readany()  # the tenant's only slot is taken
        async with http.post(
            f"{gateway.url}/v1/messages",
            json=message_body(),
            headers={**headers, "x-summarise": "1"},
        ) as r:
            # The sub-call queued behind the stream, and gave up at the queue timeout.
            assert r.status == 429
            assert (await r.json())["error"]["type"] == "rate_limit_error"
    async with http.get(f"{gateway.url}/metrics") as r:
        metrics = await r.text()
    assert 'api_tokens_total{model="claude-haiku-4-5",tenant="team",type="output"}' in metrics


class AskAnotherModel:
    """A sub-call to a model the API does not have: its error is the call's answer."""

    name = "ask_another_model"
    routes = frozenset({Route.MESSAGES})

    def __init__(self, services: Services) -> None:
        self._calls = services.calls

    async def on_request(self, call: Call) -> None:
        await self._calls.message(call.subcall(message_body(model="claude-nope-9")))


async def test_a_failed_sub_call_fails_the_call_with_the_upstreams_error(
    sim: RunningServer, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    gateway = await start_gateway(sim.url, extra_stages=lambda s: [AskAnotherModel(s)])
    async with http.post(
        f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS
    ) as r:
        assert r.status == 404
        assert (await r.json())["error"]["type"] == "not_found_error"
