"""Sessions through the gateway, on every store: remembered turns, tenants apart, failures
store nothing, one request of a session at a time, a store down, a SIGKILL right after
a turn, and redaction (the store never holds what the upstream may not see)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from claude_proxy.config import RetrySettings
from claude_proxy.pii import PiiSettings
from claude_proxy.server import RunningServer
from claude_proxy.sessions import SessionSettings, open_store
from claude_proxy.sim import JOURNAL
from tests.conftest import SIM_KEY, StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.processes import gateway_process
from tests.prompt_cache.bodies import markers
from tests.sessions.conftest import SHARED
from tests.sse import parse_events

GATEWAY_BACKENDS = ["memory", "sqlite", "postgresql", "redis"]


def turn(text: str, **fields: Any) -> dict[str, Any]:
    return message_body(text, max_tokens=200, **fields)


async def say(
    http: aiohttp.ClientSession,
    gateway: RunningServer | str,
    session: str,
    text: str,
    key: str = "client-key",
    **fields: Any,
) -> tuple[int, bytes]:
    url = gateway if isinstance(gateway, str) else gateway.url
    headers = {**API_HEADERS, "x-api-key": key, "x-session-id": session}
    async with http.post(f"{url}/v1/messages", json=turn(text, **fields), headers=headers) as r:
        return r.status, await r.read()


async def stored(
    http: aiohttp.ClientSession, gateway: RunningServer | str, session: str, key: str = "k"
) -> tuple[int, Any]:
    url = gateway if isinstance(gateway, str) else gateway.url
    headers = {**API_HEADERS, "x-api-key": key}
    async with http.get(f"{url}/v1/sessions/{session}", headers=headers) as r:
        return r.status, await r.json()


@pytest.mark.parametrize("backend", GATEWAY_BACKENDS, indirect=True)
async def test_a_conversation_is_remembered_json_and_streamed(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    sim = await start_sim(journal=20, echo=True)
    gateway = await start_gateway(sim.url, sessions=store_settings)
    status, raw = await say(http, gateway, "s1", "My name is Ada.", system="Be brief.")
    assert status == 200 and orjson.loads(raw)["content"][0]["text"] == "My name is Ada."
    status, raw = await say(http, gateway, "s1", "What is my name?", stream=True)
    assert status == 200 and parse_events(raw)[-1][0] == "message_stop"
    # The second request carried only its new turn; the upstream got the conversation.
    sent = sim.runner.app[JOURNAL].entries[-1].body
    assert [m["role"] for m in sent["messages"]] == ["user", "assistant", "user"]
    assert sent["messages"][0]["content"] == "My name is Ada."
    assert sent["system"] == "Be brief."  # stored with the first turn
    status, session = await stored(http, gateway, "s1")
    assert status == 200 and session["version"] == 2
    texts = [m["content"] if isinstance(m["content"], str) else m["content"][0]["text"]
             for m in session["messages"]]  # fmt: skip
    assert texts == ["My name is Ada.", "My name is Ada.", "What is my name?", "What is my name?"]
    # Listed, deleted, gone.
    async with http.get(f"{gateway.url}/v1/sessions", headers=API_HEADERS) as r:
        assert [s["id"] for s in (await r.json())["data"]] == ["s1"]
    async with http.delete(f"{gateway.url}/v1/sessions/s1", headers=API_HEADERS) as r:
        assert r.status == 200
    assert (await stored(http, gateway, "s1"))[0] == 404


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_each_tenant_keeps_its_sessions_for_its_own_retention(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    sim = await start_sim(echo=True)
    gateway = await start_gateway(
        sim.url,
        sessions=store_settings.model_copy(update={"ttl_seconds": 3600}),
        tenants=[
            {"name": "brief", "keys": ["key-brief"], "session_ttl_seconds": 0.3},
            {"name": "default", "keys": ["key-default"]},
        ],
    )
    for key in ("key-brief", "key-default"):
        assert (await say(http, gateway, "s1", "remember this", key=key))[0] == 200
    deadline = asyncio.get_running_loop().time() + 5
    while (await stored(http, gateway, "s1", key="key-brief"))[0] != 404:
        assert asyncio.get_running_loop().time() < deadline, "the brief session never expired"
        await asyncio.sleep(0.05)
    assert (await stored(http, gateway, "s1", key="key-default"))[0] == 200


@pytest.mark.parametrize("backend", SHARED, indirect=True)
async def test_replicas_with_caches_send_upstream_the_turns_the_other_one_stored(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    # Each replica keeps the sessions it served in its LRU for ten minutes; a turn taken
    # by the other replica meanwhile must still be in what goes upstream.
    cached = store_settings.model_copy(update={"cache_size": 100, "cache_ttl_seconds": 600})
    sim = await start_sim(journal=10, echo=True)
    one = await start_gateway(sim.url, sessions=cached)
    two = await start_gateway(sim.url, sessions=cached)
    for replica, text in ((one, "first on one"), (two, "then on two"), (one, "back on one")):
        assert (await say(http, replica, "s1", text))[0] == 200
    sent = sim.runner.app[JOURNAL].entries[-1].body["messages"]
    assert [m["content"] for m in sent if m["role"] == "user"] == [
        "first on one",
        "then on two",
        "back on one",
    ]
    assert (await stored(http, two, "s1"))[1]["version"] == 3


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_tenants_never_meet_and_failures_store_nothing(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    sim = await start_sim(echo=True)
    gateway = await start_gateway(
        sim.url,
        sessions=store_settings,
        retry=RetrySettings(max_attempts=1, heal_streams=False),
        tenants=[{"name": "a", "keys": ["key-a"]}, {"name": "b", "keys": ["key-b"]}],
    )
    assert (await say(http, gateway, "same", "from a", key="key-a"))[0] == 200
    assert (await stored(http, gateway, "same", key="key-b"))[0] == 404
    assert (await say(http, gateway, "same", "from b", key="key-b"))[0] == 200
    _, session_b = await stored(http, gateway, "same", key="key-b")
    assert len(session_b["messages"]) == 2  # b's own turn only
    # A failed call (an upstream 500, no retry) and a cut stream store nothing.
    headers = {**API_HEADERS, "x-api-key": "key-a", "x-session-id": "same"}
    for extra, body in (({"x-sim-fault": "500"}, turn("lost")),
                        ({"x-sim-fault": "cut:3"}, turn("lost too", stream=True))):  # fmt: skip
        async with http.post(
            f"{gateway.url}/v1/messages", json=body, headers={**headers, **extra}
        ) as r:
            await r.read()
    _, session_a = await stored(http, gateway, "same", key="key-a")
    assert session_a["version"] == 1 and len(session_a["messages"]) == 2


@pytest.mark.parametrize("backend", ["sqlite", "redis"], indirect=True)
async def test_one_request_of_a_session_at_a_time(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    sim = await start_sim(speed=0.1, echo=True)  # each answer takes a few tens of ms
    gateway = await start_gateway(sim.url, sessions=store_settings)
    results = await asyncio.gather(*(say(http, gateway, "busy", f"turn {n}") for n in range(5)))
    assert [status for status, _ in results] == [200] * 5
    _, session = await stored(http, gateway, "busy")
    messages = session["messages"]
    assert len(messages) == 10 and session["version"] == 5
    # Serialised, never interleaved: each user turn is followed by its own answer.
    for user, answer in zip(messages[::2], messages[1::2], strict=True):
        assert answer["content"][0]["text"] == user["content"]
    # With on_busy: reject, a second request while one runs is a 409.
    rejecting = await start_gateway(
        sim.url, sessions=store_settings.model_copy(update={"on_busy": "reject"})
    )
    statuses = sorted(
        s for s, _ in await asyncio.gather(*(say(http, rejecting, "r", "x") for _ in range(3)))
    )
    assert statuses[0] == 200 and 409 in statuses


async def test_a_store_that_is_down_is_a_503_for_session_requests_only(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    start_redis: Any,
) -> None:
    redis = start_redis()
    sim = await start_sim()
    settings = SessionSettings(url=redis.url, cache_size=0)
    gateway = await start_gateway(sim.url, sessions=settings)
    assert (await say(http, gateway, "s", "hello"))[0] == 200
    redis.kill()
    status, raw = await say(http, gateway, "s", "hello again")
    assert status == 503 and orjson.loads(raw)["error"]["type"] == "api_error"
    assert redis.url not in raw.decode()
    async with http.post(
        f"{gateway.url}/v1/messages", json=turn("no session"), headers=API_HEADERS
    ) as r:
        assert r.status == 200


@pytest.mark.parametrize("backend", SHARED, indirect=True)
async def test_a_turn_survives_a_sigkill_right_after_its_response(
    start_sim: StartSim,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
    tmp_path: Path,
) -> None:
    sim = await start_sim(echo=True)
    config = {
        "upstreams": [{"name": "sim", "base_url": sim.url, "api_key": SIM_KEY}],
        "sessions": store_settings.model_dump(),
    }
    async with gateway_process(config, tmp_path) as first:
        for stream in (False, True):
            status, _ = await say(http, first.url, "k9", f"stream={stream}", stream=stream)
            assert status == 200
        first.kill()  # no shutdown, no flush: whatever was answered must be stored
        await first.process.wait()
    async with gateway_process(config, tmp_path) as second:
        status, session = await stored(http, second.url, "k9")
        assert status == 200 and len(session["messages"]) == 4


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_store_holds_what_the_upstream_saw_not_the_values(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    store_settings: SessionSettings,
) -> None:
    sim = await start_sim(echo=True)
    gateway = await start_gateway(
        sim.url, sessions=store_settings, pii=PiiSettings(mode="pseudonymize")
    )
    status, raw = await say(http, gateway, "p", "Mail bob@example.com please.")
    assert orjson.loads(raw)["content"][0]["text"] == "Mail bob@example.com please."
    status, raw = await say(http, gateway, "p", "And carol@example.org?", stream=True)
    assert status == 200
    _, session = await stored(http, gateway, "p")
    kept = orjson.dumps(session).decode()
    assert "bob@example.com" not in kept and "carol@example.org" not in kept
    assert "<EMAIL_1>" in kept and "<EMAIL_2>" in kept  # numbered on from the history


async def test_the_clients_breakpoints_are_not_stored_so_they_never_pile_up(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """A client that marks its newest message every turn (Claude Code does), and its
    system: stored, those marks would be five by the fifth turn (the API's 400, on
    every turn after). Each turn is stored unmarked, nested blocks too; a tool's input
    is data and keeps a key of that name."""
    sim = await start_sim(journal=10)
    gateway = await start_gateway(sim.url, sessions=SessionSettings(url="memory://"))
    mark = {"type": "ephemeral"}
    system = [{"type": "text", "text": "Be brief.", "cache_control": mark}]
    tool_use = {"type": "tool_use", "id": "toolu_1", "name": "look",
                "input": {"cache_control": "kept as sent"}}  # fmt: skip
    result = {"type": "tool_result", "tool_use_id": "toolu_1",
              "content": [{"type": "text", "text": "shelf 4", "cache_control": mark}]}  # fmt: skip
    for n in range(6):
        newest: list[dict[str, Any]] = [
            {"role": "user", "content": [{"type": "text", "text": f"Question {n}?",
                                          "cache_control": mark}]},
        ]  # fmt: skip
        if n == 2:  # a tool call the client made itself, its result marked inside
            newest += [{"role": "assistant", "content": [tool_use]},
                       {"role": "user", "content": [result]}]  # fmt: skip
        fields: dict[str, Any] = {"system": system} if n == 0 else {}
        fields["tools"] = [{"name": "look", "input_schema": {"type": "object"}}]
        status, raw = await say(http, gateway, "s1", "", messages=newest, **fields)
        assert status == 200, (n, raw)
        upstream = sim.runner.app[JOURNAL].entries[-1].body
        # The newest turn's marks, and the history's none (nor the stored system's).
        breakpoints = [marker for marker in markers(upstream) if marker == mark]
        assert len(breakpoints) == (2 if n == 2 else 1) + (n == 0), n
    _, session = await stored(http, gateway, "s1")
    assert session["system"] == [{"type": "text", "text": "Be brief."}]
    assert markers(session["messages"]) == ["kept as sent"]


async def test_a_history_stored_with_marks_is_sent_without_them(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """A session stored before marks were taken out, holding four already: its next
    turn, marked, is not the API's 400."""
    settings = SessionSettings(url=f"sqlite:///{tmp_path / 'sessions.db'}")
    store = await open_store(settings.url, settings)
    mark = {"type": "ephemeral"}
    old = [{"role": role, "content": [{"type": "text", "text": f"Turn {n}", "cache_control": mark}]}
           for n, role in enumerate(["user", "assistant"] * 2)]  # fmt: skip
    await store.append("default", "s1", old, expected_version=0, system=None, ttl_seconds=None)
    await store.close()
    sim = await start_sim(journal=2)
    gateway = await start_gateway(sim.url, sessions=settings)
    newest = [
        {"role": "user", "content": [{"type": "text", "text": "Next?", "cache_control": mark}]}
    ]
    status, raw = await say(http, gateway, "s1", "", messages=newest)
    assert status == 200, raw
    assert markers(sim.runner.app[JOURNAL].entries[-1].body) == [mark]
