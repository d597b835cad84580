"""A session's context budget: the oldest whole turns are left out (or summarised) so that
the stored history and the new turn fit the window minus max_tokens; the unit ``fit``,
then the session stage through a gateway in front of the simulator."""

from __future__ import annotations

import itertools
import random
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any, cast

import aiohttp
import pytest
from multidict import CIMultiDict

from claude_proxy.errors import GatewayError, InvalidRequest
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.pipeline.service import UpstreamCalls
from claude_proxy.pipeline.stage import Stage
from claude_proxy.pipeline.stages.sessions import DROPPED, TURN, SessionLoad
from claude_proxy.services import Services
from claude_proxy.sessions import SessionConflict, SessionSettings, SessionStore, open_store
from claude_proxy.sessions.budget import (
    CONTEXT_1M_BETA,
    SUMMARY_PREFIX,
    context_window,
    fit,
    summary_request,
    summary_turn,
)
from claude_proxy.sim import JOURNAL
from claude_proxy.sim.models import CATALOGUE
from claude_proxy.tokens import estimate_input_tokens
from tests.admission.helpers import tenant
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.sessions.test_gateway import say, stored

Message = dict[str, Any]

WORDS = "the quick brown fox jumps over a lazy dog while seven wizards quietly judge boxes"


def text(tokens: int, seed: int = 0) -> str:
    """Lower-case prose of about ``tokens`` estimated tokens (three characters each)."""
    words = WORDS.split()
    rng = random.Random(seed)
    out = ""
    while len(out) < 3 * tokens:
        out += rng.choice(words) + " "
    return out.strip()


def user(content: Any) -> Message:
    return {"role": "user", "content": content}


def assistant(content: Any) -> Message:
    return {"role": "assistant", "content": content}


def conversation(turns: int, tokens: int = 100) -> list[Message]:
    messages: list[Message] = []
    for n in range(turns):
        messages += [user(f"q{n} " + text(tokens, n)), assistant(f"a{n} " + text(tokens, -n))]
    return messages


def tool_use(tool_id: str) -> Message:
    return assistant(
        [
            {"type": "text", "text": "Let me look."},
            {"type": "tool_use", "id": tool_id, "name": "lookup", "input": {"q": text(40)}},
        ]
    )


def tool_result(tool_id: str) -> Message:
    return user([{"type": "tool_result", "tool_use_id": tool_id, "content": text(60)}])


def body_tokens(messages: list[Message], system: Any = None, tools: Any = None) -> int:
    return estimate_input_tokens({"system": system, "tools": tools, "messages": messages})


def assert_well_formed(messages: Sequence[Message]) -> None:
    """Starts with a user turn, roles alternate, every tool_result's tool_use is there."""
    assert messages[0]["role"] == "user"
    assert all(a["role"] != b["role"] for a, b in itertools.pairwise(messages))
    called: set[str] = set()
    for message in messages:
        for block in message["content"] if isinstance(message["content"], list) else []:
            if block["type"] == "tool_use":
                called.add(block["id"])
            elif block["type"] == "tool_result":
                assert block["tool_use_id"] in called


# -- fit ------------------------------------------------------------------------------


def test_everything_that_fits_is_sent_as_it_is() -> None:
    history, new = conversation(3), [user("and now?")]
    fitted = fit(history, new, max_tokens=1000, context_tokens=200_000)
    assert fitted.dropped == 0 and fitted.messages == [*history, *new]
    assert fitted.tokens == body_tokens(fitted.messages)


def test_the_oldest_whole_turns_go_first_and_no_more_than_needed() -> None:
    history, new = conversation(6), [user("q6 " + text(100))]
    whole = body_tokens([*history, *new])
    for context in range(whole + 299, 1000, -37):
        fitted = fit(history, new, max_tokens=300, context_tokens=context)
        assert fitted.dropped % 2 == 0 and fitted.dropped > 0  # whole turns
        assert fitted.messages == [*history[fitted.dropped :], *new]
        assert body_tokens(fitted.messages) <= fitted.tokens <= context - 300
        # One turn more would not have fitted.
        assert body_tokens([*history[fitted.dropped - 2 :], *new]) > context - 300
        assert_well_formed(fitted.messages)


def test_the_system_prompt_and_tools_are_kept_and_counted() -> None:
    history, new = conversation(6), [user("next")]
    context = body_tokens([*history, *new]) + 100
    assert fit(history, new, max_tokens=100, context_tokens=context).dropped == 0
    system = [{"type": "text", "text": text(250)}]
    tools = [{"name": "lookup", "description": text(50), "input_schema": {"type": "object"}}]
    fitted = fit(history, new, system=system, tools=tools, max_tokens=100, context_tokens=context)
    assert fitted.dropped > 0  # the system and the tools took some turns' room
    assert body_tokens(fitted.messages, system, tools) == fitted.tokens <= context - 100
    assert body_tokens(history[fitted.dropped - 2 :] + new, system, tools) > context - 100
    # ``reserve`` keeps room for what the caller will add: the same room, the same cut.
    room = body_tokens([], system, tools)
    reserved = fit(history, new, max_tokens=100, context_tokens=context, reserve=room)
    assert reserved.messages == fitted.messages


def test_a_tool_use_and_its_result_go_together_or_not_at_all() -> None:
    history = [
        user("q0 " + text(100)),
        tool_use("toolu_1"),
        tool_result("toolu_1"),
        assistant("found it " + text(100)),
        user("q1 " + text(100)),
        assistant("a1"),
    ]
    new = [user("thanks")]
    for context in range(body_tokens([*history, *new]) - 1, 0, -11):
        try:
            fitted = fit(history, new, max_tokens=0, context_tokens=context)
        except InvalidRequest:
            break
        assert fitted.dropped in (0, 4, 6)  # never 2: the result without its call
        assert_well_formed(fitted.messages)
    # A new turn that answers the stored tool call keeps the turn that made it.
    history = [*conversation(3), user("q3"), tool_use("toolu_2")]
    new = [tool_result("toolu_2")]
    fitted = fit(history, new, max_tokens=0, context_tokens=body_tokens(history[-2:] + new))
    assert fitted.messages == [*history[-2:], *new]
    assert_well_formed(fitted.messages)


def test_roles_still_alternate_with_several_user_messages_in_a_row() -> None:
    history = [user("one " + text(100)), user("two " + text(100)), assistant("a"),
               user("three " + text(100)), assistant("b")]  # fmt: skip
    new = [user("four")]
    context = body_tokens([*history[1:], *new])  # two user messages are one turn
    fitted = fit(history, new, max_tokens=0, context_tokens=context)
    assert fitted.dropped == 3 and fitted.messages[0]["content"].startswith("three")


def test_with_a_step_the_history_sent_keeps_its_start_for_several_turns() -> None:
    # The API's prompt cache matches prefixes: a start that moves every turn is never read.
    context, max_tokens = 4000, 200
    history: list[Message] = []
    starts = {0: [], 1000: []}  # step -> the first kept message, turn after turn
    for n in range(40):
        new = [user(f"q{n} " + text(150, n))]
        for step in starts:
            fitted = fit(history, new, max_tokens=max_tokens, context_tokens=context, step=step)
            assert fitted.tokens <= context - max_tokens
            assert fitted.tokens == body_tokens(fitted.messages)
            assert_well_formed(fitted.messages)
            starts[step].append(fitted.messages[0]["content"][:4] if fitted.dropped else "all")
        history += [*new, assistant(f"a{n} " + text(40, n))]
    moved = {
        step: sum(a != b for a, b in itertools.pairwise(seen)) for step, seen in starts.items()
    }
    dropping = sum(start != "all" for start in starts[0])
    assert dropping > 20
    assert moved[0] >= dropping - 1  # without a step the start moves on every turn
    assert moved[1000] <= moved[0] // 3  # with one it holds for several turns


def test_a_tool_input_nested_past_orjsons_writer_is_summarised() -> None:
    deep: Any = "bottom"
    for _ in range(600):
        deep = {"next": deep}
    call = {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "walk", "input": deep}]}  # fmt: skip
    body = summary_request([user("go"), call], model="m", max_tokens=100, context_tokens=200_000)
    assert '"bottom"' in body["messages"][0]["content"]


def test_a_new_turn_that_does_not_fit_alone_is_a_400() -> None:
    new = [user(text(2000))]
    with pytest.raises(InvalidRequest, match="more than the 1,000 that") as raised:
        fit(conversation(4), new, max_tokens=2000, context_tokens=3000)
    assert raised.value.status == 400 and "max_tokens (2,000)" in str(raised.value)


def test_a_chinese_history_is_counted_by_the_estimator() -> None:
    chinese = "我们明天早上九点在会议室讨论这个项目的预算和时间表" * 10  # 250 characters
    history: list[Message] = []
    for n in range(6):
        history += [user(f"{n} {chinese}"), assistant(chinese)]
    new = [user("继续")]
    # By characters, all of it would fit in 4,000 tokens; by the estimator (1.5 a
    # character, as the tokenizer spends on CJK) it does not.
    assert sum(len(m["content"]) for m in history) < 3500
    fitted = fit(history, new, max_tokens=200, context_tokens=4000)
    assert fitted.dropped == 4
    assert body_tokens(fitted.messages) == fitted.tokens <= 3800
    assert body_tokens([*history[2:], *new]) > 3800


def test_context_windows_agree_with_the_simulators_catalogue() -> None:
    for name, spec in CATALOGUE.items():
        assert context_window(name) == spec.context_window, name
    assert context_window("claude-opus-4-6-20260205") == 1_000_000
    assert context_window("claude-future-model") == context_window(None) == 200_000
    assert context_window("claude-sonnet-4-5", beta=f"other,{CONTEXT_1M_BETA}") == 1_000_000


def test_the_summary_request_shows_the_dropped_turns_as_a_transcript() -> None:
    answer = assistant([{"type": "thinking", "thinking": "hmm"}, {"type": "text", "text": "Hi"}])
    dropped = [user("My name is Ada."), tool_use("toolu_1"), tool_result("toolu_1"), answer]
    body = summary_request(dropped, model="m", max_tokens=100, context_tokens=200_000)
    prompt = body["messages"][0]["content"]
    assert body["model"] == "m" and body["max_tokens"] == 100 and body["system"]
    assert "User: My name is Ada." in prompt and "[called the tool lookup with" in prompt
    assert "[tool result: " in prompt and "Assistant: Hi" in prompt and "hmm" not in prompt
    # A transcript larger than the window itself keeps its newest part.
    big = summary_request(conversation(40), model="m", max_tokens=100, context_tokens=3000)
    assert body_tokens(big["messages"]) <= 3000 and "a39 " in big["messages"][0]["content"]
    assert [m["role"] for m in summary_turn("x")] == ["user", "assistant"]


# -- through the gateway ----------------------------------------------------------------


class Observe:
    """Keeps what ``session_load`` said it left out, per request."""

    name = "observe"
    routes = frozenset({Route.MESSAGES})

    def __init__(self) -> None:
        self.dropped: list[int] = []

    async def on_request(self, call: Call) -> None:
        self.dropped.append(call.state.get(DROPPED, -1))  # -1: not a session request


def settings(tmp_path: Path, **fields: Any) -> SessionSettings:
    url = f"sqlite:///{tmp_path / 'sessions.db'}"
    return SessionSettings(url=url, context_tokens=3000, **fields)


def summaries(entries: Sequence[Any]) -> list[Any]:
    return [e for e in entries if str(e.body.get("system", "")).startswith("You condense")]


async def test_a_long_session_sends_only_what_fits_and_keeps_it_all(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    sim = await start_sim(journal=20, echo=True)
    observe = Observe()
    gateway = await start_gateway(
        sim.url, sessions=settings(tmp_path), extra_stages=lambda _: [observe]
    )
    for n in range(8):
        status, _ = await say(http, gateway, "long", f"q{n} " + text(300, n), system="Be brief.")
        assert status == 200
    sent = sim.runner.app[JOURNAL].entries[-1].body
    assert sent["system"] == "Be brief."
    assert sent["messages"][-1]["content"].startswith("q7 ")
    assert body_tokens(sent["messages"], sent["system"]) <= 3000 - 200
    assert_well_formed(sent["messages"])
    assert observe.dropped[0] == 0 and observe.dropped[-1] > 0
    assert observe.dropped[-1] == 14 - (len(sent["messages"]) - 1)  # of the 7 turns stored
    _, session = await stored(http, gateway, "long")
    assert len(session["messages"]) == 16  # dropped from the request, not from the store
    # The response says how many messages were left out.
    headers = {**API_HEADERS, "x-session-id": "long"}
    body = message_body("q8 " + text(300, 8), max_tokens=200)
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
        assert r.status == 200
        assert r.headers["x-proxy-session-dropped"] == str(observe.dropped[-1])
    async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
        assert "x-proxy-session-dropped" not in r.headers  # not a session request


@pytest.mark.parametrize("overflow_step", [0.25, 0.0])
async def test_turns_left_out_in_steps_let_the_prompt_cache_be_read(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    overflow_step: float,
) -> None:
    # With automatic prompt caching on (the default), a long session whose start moved
    # every turn would write its whole prompt at 1.25x on every turn and read nothing.
    sim = await start_sim()
    gateway = await start_gateway(
        sim.url,
        sessions=SessionSettings(
            url="memory://", context_tokens=12_000, overflow_step=overflow_step
        ),
    )
    reads = []
    headers = {**API_HEADERS, "x-session-id": "long"}
    for n in range(20):
        body = message_body(f"q{n} " + text(1000, n), max_tokens=20, system="Be brief.")
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=headers) as r:
            assert r.status == 200
            dropped = int(r.headers["x-proxy-session-dropped"])
            usage = (await r.json())["usage"]
        if dropped:
            reads.append(usage["cache_read_input_tokens"] > 0)
    assert len(reads) >= 6
    if overflow_step:
        assert sum(reads) >= len(reads) // 2, reads
    else:
        assert sum(reads) == 0, reads  # what the step is for


async def test_overflow_summarize_stores_one_summary_in_place_of_the_old_turns(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def extra(built: Services) -> Sequence[Stage]:
        return [observe]

    sim = await start_sim(journal=50, echo=True)
    observe = Observe()
    gateway = await start_gateway(
        sim.url,
        sessions=settings(tmp_path, overflow="summarize", summary_tokens=100, overflow_step=0),
        extra_stages=extra,
    )
    for n in range(4):
        assert (await say(http, gateway, "sum", f"q{n} " + text(450, n)))[0] == 200
    journal = sim.runner.app[JOURNAL]
    assert summaries(journal.entries) == [] and observe.dropped == [0, 0, 0, 0]
    _, before = await stored(http, gateway, "sum")
    assert (await say(http, gateway, "sum", "q4 " + text(450, 4)))[0] == 200
    (summary_call,) = summaries(journal.entries)
    assert "User: q0 " in summary_call.body["messages"][0]["content"]
    sent = journal.entries[-1].body["messages"]
    assert sent[0]["content"].startswith(SUMMARY_PREFIX) and sent[1]["role"] == "assistant"
    assert sent[2]["content"].startswith(f"q{observe.dropped[-1] // 2} ")
    assert sent[-1]["content"].startswith("q4 ")
    assert_well_formed(sent)
    # Stored in place of the turns it summarised: one version for it, one for the turn.
    _, after = await stored(http, gateway, "sum")
    assert after["version"] == before["version"] + 2
    assert after["messages"][:2] == sent[:2]
    assert len(after["messages"]) == len(sent) + 1
    # Made once: the next turn is sent after the stored summary, with no new one.
    assert (await say(http, gateway, "sum", "q5 short"))[0] == 200
    assert len(summaries(journal.entries)) == 1
    assert journal.entries[-1].body["messages"][0] == sent[0] and observe.dropped[-1] == 0


# -- the stage on its own: what happens when a summary cannot be made or kept -----------


class FakeCalls:
    """The upstream-call service, answering sub-calls with ``answer`` (None: failing)."""

    def __init__(self, answer: str | None) -> None:
        self.answer = answer
        self.bodies: list[Any] = []

    async def message(self, call: Call) -> dict[str, Any]:
        self.bodies.append(call.body)
        if self.answer is None:
            raise GatewayError("The upstream is down.")
        return {"role": "assistant", "content": [{"type": "text", "text": self.answer}]}


@pytest.fixture
async def memory() -> AsyncIterator[SessionStore]:
    store = await open_store("memory://", SessionSettings(url="memory://"))
    await store.append("t", "s", conversation(6), expected_version=0)
    yield store
    await store.close()


async def load(stage: SessionLoad, new: str, max_tokens: int = 200) -> Call:
    call = Call.create(
        "req_1",
        Route.MESSAGES,
        path="/v1/messages",
        headers=CIMultiDict({"x-session-id": "s"}),
        body={"model": "claude-haiku-4-5", "max_tokens": max_tokens, "messages": [user(new)]},
    )
    call.tenant = tenant("t")
    try:
        await stage.on_request(call)
    finally:
        if TURN in call.state:
            await call.state[TURN].release()
    return call


def summarizing(calls: FakeCalls | None) -> dict[str, Any]:
    settings = SessionSettings(
        url="memory://", context_tokens=1000, overflow="summarize", summary_tokens=50
    )
    return {"settings": settings, "calls": cast(UpstreamCalls, calls)}


async def test_a_summary_that_fails_drops_the_turns_instead(memory: SessionStore) -> None:
    calls = FakeCalls(None)
    call = await load(SessionLoad(memory, **summarizing(calls)), "next")
    assert len(calls.bodies) == 1 and call.state[DROPPED] > 0
    sent = call.body["messages"]
    assert sent[0]["content"].startswith(f"q{call.state[DROPPED] // 2} ")
    session = await memory.load("t", "s")
    assert session is not None and session.version == 1 and len(session.messages) == 12


async def test_a_summary_is_sent_but_not_stored_when_the_session_changed(
    memory: SessionStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def conflict(tenant: str, session_id: str, *_: Any, expected_version: int) -> int:
        raise SessionConflict(session_id, expected_version, expected_version + 1)

    monkeypatch.setattr(memory, "replace", conflict)
    call = await load(SessionLoad(memory, **summarizing(FakeCalls("Ada likes tea."))), "next")
    sent = call.body["messages"]
    assert sent[0]["content"] == SUMMARY_PREFIX + "Ada likes tea."
    assert call.state[TURN].version == 1  # the turn is stored after the stored history
    assert call.state[TURN].history == len(sent) - 1


async def test_a_turn_too_big_for_the_window_is_a_400_and_frees_the_session(
    memory: SessionStore,
) -> None:
    stage = SessionLoad(memory, **summarizing(FakeCalls("unused")))
    with pytest.raises(InvalidRequest, match="the new turn needs about"):
        await load(stage, text(1000))
    with pytest.raises(InvalidRequest):
        await load(stage, "short", max_tokens=1500)
    async with memory.lock("t", "s", wait=0):  # not left held
        pass
    assert (await load(stage, "short")).state[DROPPED] > 0
