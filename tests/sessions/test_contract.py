"""The session-store contract, the same for every backend (see ``conftest.BACKENDS``)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from claude_proxy.sessions import SessionConflict, SessionStore
from tests.sessions.conftest import SHARED

T = "tenant-a"

SYSTEM = [
    {"type": "text", "text": "你是一个乐于助人的助手。", "cache_control": {"type": "ephemeral"}}
]
QUESTION = {"role": "user", "content": "北京今天的天气怎么样？请用摄氏度回答。"}
TOOL_USE = {
    "role": "assistant",
    "content": [
        {"type": "text", "text": "我来查一下。"},
        {
            "type": "tool_use",
            "id": "toolu_01A09q90qw90lq917835lq9",
            "name": "get_weather",
            "input": {
                "city": "北京",
                "unit": "celsius",
                "days": [1, 2],
                "detail": {"hourly": True},
            },
        },
    ],
}
TOOL_RESULT = {
    "role": "user",
    "content": [
        {
            "type": "tool_result",
            "tool_use_id": "toolu_01A09q90qw90lq917835lq9",
            "content": [{"type": "text", "text": "晴，25°C，湿度 40%"}],
            "is_error": False,
        }
    ],
}
ANSWER = {"role": "assistant", "content": [{"type": "text", "text": "北京今天晴，25°C。"}]}


def turn(text: str, role: str = "user") -> dict[str, Any]:
    return {"role": role, "content": text}


async def test_round_trip_keeps_chinese_text_and_nested_tool_blocks(store: SessionStore) -> None:
    before = time.time()
    first = await store.append(T, "s1", [QUESTION, TOOL_USE], expected_version=0, system=SYSTEM)
    second = await store.append(T, "s1", [TOOL_RESULT, ANSWER], expected_version=first)
    assert (first, second) == (1, 2)

    session = await store.load(T, "s1")
    assert session is not None
    assert session.messages == [QUESTION, TOOL_USE, TOOL_RESULT, ANSWER]
    assert session.system == SYSTEM
    assert (session.tenant, session.session_id, session.version) == (T, "s1", 2)
    assert before - 1 <= session.created <= session.updated <= time.time() + 1

    session.messages[1]["content"][1]["input"]["city"] = "上海"  # the caller's own copy
    session.messages.append(turn("extra"))
    again = await store.load(T, "s1")
    assert again is not None and again.messages == [QUESTION, TOOL_USE, TOOL_RESULT, ANSWER]


async def test_unknown_sessions_and_other_tenants_load_none(store: SessionStore) -> None:
    await store.append(T, "s1", [QUESTION], expected_version=0)
    assert await store.load(T, "nope") is None
    assert await store.load("tenant-b", "s1") is None


async def test_system_is_kept_unless_given(store: SessionStore) -> None:
    version = await store.append(T, "s1", [], expected_version=0, system="简短回答")
    empty = await store.load(T, "s1")
    assert empty is not None and (empty.messages, empty.system) == ([], "简短回答")
    version = await store.append(T, "s1", [QUESTION], expected_version=version)
    kept = await store.load(T, "s1")
    assert kept is not None and kept.system == "简短回答"
    await store.append(T, "s1", [ANSWER], expected_version=version, system=SYSTEM)
    changed = await store.load(T, "s1")
    assert changed is not None and changed.system == SYSTEM
    assert changed.messages == [QUESTION, ANSWER] and changed.version == 3


async def test_a_session_without_system_has_none(store: SessionStore) -> None:
    await store.append(T, "s1", [QUESTION], expected_version=0)
    session = await store.load(T, "s1")
    assert session is not None and session.system is None


async def test_a_stale_version_is_a_conflict_and_writes_nothing(store: SessionStore) -> None:
    version = await store.append(T, "s1", [QUESTION], expected_version=0)
    for stale in (0, version + 1, 7):
        with pytest.raises(SessionConflict):
            await store.append(T, "s1", [turn("lost")], expected_version=stale, system="x")
    with pytest.raises(SessionConflict):
        await store.append(T, "missing", [turn("lost")], expected_version=1)
    session = await store.load(T, "s1")
    assert session is not None
    assert (session.messages, session.version, session.system) == ([QUESTION], 1, None)
    assert await store.load(T, "missing") is None


@pytest.mark.parametrize("start", [0, 2])
async def test_concurrent_appends_on_one_version_exactly_one_wins(
    store: SessionStore, other: SessionStore, start: int
) -> None:
    history: list[dict[str, Any]] = []
    if start:
        await store.append(T, "s1", [turn("a")], expected_version=0)
        await store.append(T, "s1", [turn("b", "assistant")], expected_version=1)
        history = [turn("a"), turn("b", "assistant")]
    replicas = [store, other] * 4
    results = await asyncio.gather(
        *(
            replica.append(T, "s1", [turn(f"racer {i}")], expected_version=start)
            for i, replica in enumerate(replicas)
        ),
        return_exceptions=True,
    )
    winners = [i for i, result in enumerate(results) if result == start + 1]
    assert len(winners) == 1, results
    assert all(isinstance(r, SessionConflict) for i, r in enumerate(results) if i != winners[0])
    session = await other.load(T, "s1")
    assert session is not None and session.version == start + 1
    assert session.messages == [*history, turn(f"racer {winners[0]}")]


async def test_a_crowd_of_appends_all_land_and_a_stale_one_among_them_fails_alone(
    store: SessionStore, other: SessionStore
) -> None:
    # Stores share one commit or round trip among concurrent writes: each must still
    # succeed or fail on its own.
    await store.append(T, "stale", [turn("first")], expected_version=0)
    writes = [
        (store if i % 2 else other).append(
            T, f"s{i}", [turn(f"q{i}"), turn(f"a{i}", "assistant")], expected_version=0
        )
        for i in range(60)
    ]
    writes.insert(30, store.append(T, "stale", [turn("lost")], expected_version=0))
    results = await asyncio.gather(*writes, return_exceptions=True)
    assert isinstance(results.pop(30), SessionConflict)
    assert results == [1] * 60
    for i in (0, 29, 30, 59):
        session = await other.load(T, f"s{i}")
        assert session is not None
        assert session.messages == [turn(f"q{i}"), turn(f"a{i}", "assistant")]
    stale = await other.load(T, "stale")
    assert stale is not None and stale.messages == [turn("first")]


async def test_version_is_what_the_store_holds_now(
    store: SessionStore, other: SessionStore
) -> None:
    assert await store.version(T, "s1") == 0
    await other.append(T, "s1", [QUESTION], expected_version=0)
    await other.append(T, "s1", [ANSWER], expected_version=1)
    assert await store.version(T, "s1") == 2
    assert await store.version("tenant-b", "s1") == 0
    await other.delete(T, "s1")
    assert await store.version(T, "s1") == 0


async def test_replace_swaps_the_messages_and_keeps_the_rest(store: SessionStore) -> None:
    version = await store.append(T, "s1", [QUESTION, TOOL_USE], expected_version=0, system="s")
    version = await store.append(T, "s1", [TOOL_RESULT, ANSWER], expected_version=version)
    summary = [turn("之前的对话摘要：用户问了北京的天气，答案是晴，25°C。")]
    with pytest.raises(SessionConflict):
        await store.replace(T, "s1", summary, expected_version=version - 1)
    version = await store.replace(T, "s1", summary, expected_version=version)
    assert version == 3
    session = await store.load(T, "s1")
    assert session is not None
    assert (session.messages, session.system, session.version) == (summary, "s", 3)

    version = await store.append(T, "s1", [turn("还有上海呢？")], expected_version=version)
    session = await store.load(T, "s1")
    assert session is not None and session.messages == [*summary, turn("还有上海呢？")]
    (info,) = await store.list(T)
    assert (info.session_id, info.turns) == ("s1", 2)


async def test_replace_with_version_0_creates_the_session(store: SessionStore) -> None:
    assert await store.replace(T, "new", [QUESTION], expected_version=0) == 1
    with pytest.raises(SessionConflict):
        await store.replace(T, "new", [QUESTION], expected_version=0)
    session = await store.load(T, "new")
    assert session is not None and (session.messages, session.version) == ([QUESTION], 1)


async def test_delete_forgets_the_session_of_its_tenant_only(store: SessionStore) -> None:
    await store.append(T, "s1", [QUESTION], expected_version=0)
    await store.append("tenant-b", "s1", [ANSWER], expected_version=0)
    assert await store.delete(T, "s1") is True
    assert await store.load(T, "s1") is None
    assert await store.delete(T, "s1") is False
    assert await store.list(T) == []
    assert await store.append(T, "s1", [turn("again")], expected_version=0) == 1
    untouched = await store.load("tenant-b", "s1")
    assert untouched is not None and untouched.messages == [ANSWER]


async def test_list_pages_by_id_within_a_tenant(store: SessionStore) -> None:
    ids = ["s-10", "会话-1", "s-02", "A-1", "s-01", "s-03", "s-1"]
    for n, session_id in enumerate(ids):
        await store.append(T, session_id, [turn(str(i)) for i in range(n + 1)], expected_version=0)
    await store.append("tenant-b", "b-only", [QUESTION], expected_version=0)

    pages, after = [], None
    while page := await store.list(T, limit=3, after=after):
        assert len(page) <= 3
        pages.append([info.session_id for info in page])
        after = page[-1].session_id
    assert pages == [["A-1", "s-01", "s-02"], ["s-03", "s-1", "s-10"], ["会话-1"]]
    turns = {info.session_id: info.turns for info in await store.list(T, limit=100)}
    assert turns == {session_id: n + 1 for n, session_id in enumerate(ids)}
    assert [info.session_id for info in await store.list("tenant-b")] == ["b-only"]
    assert await store.list("tenant-c") == []
    (first,) = await store.list(T, limit=1)
    assert first.created <= first.updated


async def until_gone(store: SessionStore, session_id: str, within: float = 3.0) -> None:
    deadline = time.monotonic() + within
    while await store.load(T, session_id) is not None:
        assert time.monotonic() < deadline, f"{session_id} did not expire"
        await asyncio.sleep(0.02)


async def test_sessions_expire_after_their_ttl_and_appends_refresh_it(
    store: SessionStore, make_store: Any
) -> None:
    ttl = 0.4
    retaining = await make_store(ttl_seconds=ttl)
    started = time.monotonic()
    await store.append(T, "refreshed", [QUESTION], expected_version=0, ttl_seconds=ttl)
    await retaining.append(T, "default", [QUESTION], expected_version=0)
    await store.append(T, "kept", [QUESTION], expected_version=0)
    await asyncio.sleep(0.2)
    await store.append(T, "refreshed", [ANSWER], expected_version=1, ttl_seconds=ttl)
    await asyncio.sleep(started + ttl + 0.05 - time.monotonic())

    # Past the first expiry: the append pushed it out; the session of the default has gone.
    assert await store.load(T, "refreshed") is not None
    await until_gone(retaining, "default")
    await until_gone(store, "refreshed")
    assert [info.session_id for info in await store.list(T)] == ["kept"]
    assert await store.delete(T, "default") is False
    assert await store.append(T, "refreshed", [turn("新的")], expected_version=0) == 1
    fresh = await store.load(T, "refreshed")
    assert fresh is not None and fresh.messages == [turn("新的")]


@pytest.mark.parametrize("backend", SHARED, indirect=True)
async def test_a_write_of_one_replica_is_read_by_another(
    store: SessionStore, other: SessionStore
) -> None:
    await store.append(T, "s1", [QUESTION], expected_version=0, system="s")
    await other.append(T, "s1", [ANSWER], expected_version=1)
    session = await store.load(T, "s1")
    assert session is not None and session.messages == [QUESTION, ANSWER]
    assert [info.session_id for info in await other.list(T)] == ["s1"]


async def test_no_session_id_reaches_into_another_tenant(store: SessionStore) -> None:
    # Ids are the client's choice; tenant names with separators must not let one forge the other.
    pairs = [("a}:m:b", "c"), ("a", "b}:m:c"), ("a:b", "c"), ("a", "b:c"), ("{a}", "{b}")]
    for n, (tenant, session_id) in enumerate(pairs):
        await store.append(tenant, session_id, [turn(str(n))], expected_version=0)
    for n, (tenant, session_id) in enumerate(pairs):
        session = await store.load(tenant, session_id)
        assert session is not None and session.messages == [turn(str(n))]
        assert [info.session_id for info in await store.list(tenant)] == [
            other for owner, other in sorted(pairs) if owner == tenant
        ]
    assert await store.list("a", limit=0) == []
