"""Writes made while a group is in flight go together in the next one."""

from __future__ import annotations

import asyncio

import pytest

from claude_proxy.sessions.coalesce import Coalescer, Outcome


class Recorder:
    """A ``run_group`` that records its groups and can be held mid-group."""

    def __init__(self) -> None:
        self.groups: list[list[str]] = []
        self.gate = asyncio.Event()
        self.gate.set()

    async def __call__(self, items: list[str]) -> list[Outcome]:
        self.groups.append(items)
        await self.gate.wait()
        return [
            (item.startswith("bad"), ValueError(item) if item.startswith("bad") else item.upper())
            for item in items
        ]


async def test_a_lone_write_goes_at_once_and_a_crowd_shares_one_group() -> None:
    run = Recorder()
    groups = Coalescer(run, max_group=100, name="test")
    assert await groups.submit("solo") == "SOLO"
    run.gate.clear()
    first = asyncio.create_task(groups.submit("first"))
    await asyncio.sleep(0)  # the first group is in flight, held
    await asyncio.sleep(0)
    crowd = [asyncio.create_task(groups.submit(f"w{i}")) for i in range(50)]
    await asyncio.sleep(0)
    run.gate.set()
    assert await first == "FIRST"
    assert await asyncio.gather(*crowd) == [f"W{i}" for i in range(50)]
    assert run.groups == [["solo"], ["first"], [f"w{i}" for i in range(50)]]


async def test_groups_are_capped_and_a_failing_item_fails_alone() -> None:
    run = Recorder()
    groups = Coalescer(run, max_group=4, name="test")
    results = await asyncio.gather(
        *(groups.submit(name) for name in ["a", "bad1", "b", "c", "d", "bad2", "e"]),
        return_exceptions=True,
    )
    assert [str(r) if isinstance(r, ValueError) else r for r in results] == [
        "A",
        "bad1",
        "B",
        "C",
        "D",
        "bad2",
        "E",
    ]
    assert all(len(group) <= 4 for group in run.groups)
    assert sum(map(len, run.groups)) == 7


async def test_an_error_of_the_whole_group_reaches_every_writer_and_the_next_group_runs() -> None:
    calls = 0

    async def broken_once(items: list[str]) -> list[Outcome]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("disk gone")
        return [(False, item) for item in items]

    groups = Coalescer(broken_once, max_group=10, name="test")
    results = await asyncio.gather(groups.submit("x"), groups.submit("y"), return_exceptions=True)
    assert [type(r) for r in results] == [OSError, OSError]
    assert await groups.submit("z") == "z"


async def test_a_write_whose_caller_is_cancelled_still_runs() -> None:
    run = Recorder()
    groups = Coalescer(run, max_group=10, name="test")
    run.gate.clear()
    caller = asyncio.create_task(groups.submit("release-the-lock"))
    await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    run.gate.set()
    await groups.drained()
    assert run.groups == [["release-the-lock"]]
