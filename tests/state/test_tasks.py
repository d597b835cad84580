"""stop_tasks: bounded, and deaf to no cancel that a task lost."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from claude_proxy.state.tasks import cancel_requested, stop_tasks


async def _loses_first_cancel(parked: asyncio.Event) -> None:
    """As a loop whose cancel redis-py swallowed: it goes on, and parks again."""
    try:
        parked.set()
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        assert cancel_requested()  # lost, but still visible
    await asyncio.Event().wait()


async def _never_stops(parked: asyncio.Event, release: asyncio.Event) -> None:
    while not release.is_set():
        parked.set()
        try:
            await release.wait()
        except asyncio.CancelledError:
            continue


async def test_a_task_that_lost_its_cancel_is_cancelled_again() -> None:
    parked = asyncio.Event()
    task = asyncio.create_task(_loses_first_cancel(parked))
    await parked.wait()
    started = time.monotonic()
    await stop_tasks([task], deadline=0.2)
    assert task.cancelled()
    assert time.monotonic() - started < 0.2


async def test_a_task_that_never_stops_is_left_at_the_deadline(
    caplog: pytest.LogCaptureFixture,
) -> None:
    parked, release = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(_never_stops(parked, release), name="stubborn")
    quick = asyncio.create_task(asyncio.Event().wait(), name="quick")
    await parked.wait()
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="claude_proxy.state"):
        await stop_tasks([task, quick], deadline=0.2)
    try:
        assert 0.2 <= time.monotonic() - started < 0.4
        assert quick.cancelled() and not task.done()
        assert "stubborn" in caplog.text and "quick" not in caplog.text
    finally:
        release.set()
        await task


async def test_failures_are_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def fail() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(fail(), name="failing")
    await asyncio.sleep(0)
    with caplog.at_level(logging.WARNING, logger="claude_proxy.state"):
        await stop_tasks([task], deadline=0.2)
    assert "failing" in caplog.text and "boom" in caplog.text


async def test_nothing_to_stop_returns_at_once() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    started = time.monotonic()
    await stop_tasks([done], deadline=5.0)
    await stop_tasks([], deadline=5.0)
    assert time.monotonic() - started < 0.05
