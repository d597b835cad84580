"""Session locks: exclusive while held, renewed, released on exit, expiring when the holder dies."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from claude_proxy.sessions import SessionBusy, SessionSettings, SessionStore
from tests.sessions import worker
from tests.sessions.conftest import SHARED

T = "tenant-a"
ROOT = Path(__file__).resolve().parents[2]


async def test_a_held_lock_makes_others_busy(store: SessionStore, other: SessionStore) -> None:
    async with store.lock(T, "s1", wait=0, lease=5):
        with pytest.raises(SessionBusy):
            async with other.lock(T, "s1", wait=0):
                pytest.fail("two holders at once")
        started = time.monotonic()
        with pytest.raises(SessionBusy):
            async with other.lock(T, "s1", wait=0.1):
                pytest.fail("two holders at once")
        assert time.monotonic() - started >= 0.09
        # Other sessions, and the same id of another tenant, are separate locks.
        async with other.lock(T, "s2", wait=0), other.lock("tenant-b", "s1", wait=0):
            pass
    async with other.lock(T, "s1", wait=0):
        pass


async def test_a_waiter_gets_the_lock_once_it_is_released(
    store: SessionStore, other: SessionStore
) -> None:
    held = asyncio.Event()
    order: list[str] = []

    async def holder() -> None:
        async with store.lock(T, "s1", wait=0):
            held.set()
            await asyncio.sleep(0.1)
            order.append("holder out")

    task = asyncio.create_task(holder())
    await held.wait()
    started = time.monotonic()
    async with other.lock(T, "s1", wait=5):
        order.append("waiter in")
    await task
    assert order == ["holder out", "waiter in"]
    assert 0.05 < time.monotonic() - started < 2


async def test_an_error_inside_releases_the_lock(store: SessionStore, other: SessionStore) -> None:
    with pytest.raises(ZeroDivisionError):
        async with store.lock(T, "s1", wait=0):
            _ = 1 / 0
    async with other.lock(T, "s1", wait=0):
        pass


async def test_the_lease_is_renewed_while_held(store: SessionStore, other: SessionStore) -> None:
    async with store.lock(T, "s1", wait=0, lease=0.15):
        await asyncio.sleep(0.35)  # more than twice the lease
        with pytest.raises(SessionBusy):
            async with other.lock(T, "s1", wait=0):
                pytest.fail("the lease ran out while held")


@asynccontextmanager
async def worker_process(action: str, settings: SessionSettings) -> AsyncIterator[str]:
    """``tests.sessions.worker`` running ``action``; yields its first line, then kills it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.sessions.worker", action, settings.url,
        settings.key_prefix, cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert process.stdout is not None
    try:
        async with asyncio.timeout(20):
            line = (await process.stdout.readline()).decode().strip()
        yield line
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGKILL)
        await process.wait()


@pytest.mark.parametrize("backend", SHARED, indirect=True)
async def test_the_lease_runs_out_after_its_holder_is_killed(
    store: SessionStore, store_settings: SessionSettings
) -> None:
    async with worker_process("lock", store_settings) as line:
        assert line == "locked"
        with pytest.raises(SessionBusy):
            async with store.lock(worker.TENANT, "locked", wait=0):
                pytest.fail("the worker holds it")
        killed = time.monotonic()
    async with store.lock(worker.TENANT, "locked", wait=5):
        waited = time.monotonic() - killed
    assert waited < worker.LEASE + 1.0
