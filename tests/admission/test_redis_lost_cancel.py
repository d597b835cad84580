"""The Redis backend when redis-py loses a cancellation (see ``tests.state.swallowing``)."""

from __future__ import annotations

import asyncio

import pytest

from claude_proxy.admission import redis as admission_redis
from claude_proxy.admission import redis_scripts as lua
from claude_proxy.admission.redis import RedisAdmission
from claude_proxy.tenancy import AdmissionSettings
from tests.admission.helpers import tenant
from tests.state.swallowing import Trap, finishes_within

CLOSE_WITHIN = 1.0  # seconds; close() has no reason to use its deadlines here


async def _open(
    monkeypatch: pytest.MonkeyPatch, trap: Trap, url: str, prefix: str, **fields: float
) -> RedisAdmission:
    monkeypatch.setattr(admission_redis, "open_redis", trap.open_redis)
    settings = AdmissionSettings.model_validate({"state": url, "key_prefix": prefix, **fields})
    return await RedisAdmission.open(settings, [tenant("a", max_concurrent=1, queue_timeout=5)])


async def _close_and_check(admission: RedisAdmission, trap: Trap) -> None:
    async with asyncio.timeout(1.0):
        await trap.sprung.wait()  # a background loop is in the trapped command
    assert await finishes_within(admission.close(), CLOSE_WITHIN)
    assert trap.swallowed.is_set()
    others = asyncio.all_tasks() - {asyncio.current_task()}
    assert not [task for task in others if not task.done()]


async def test_close_stops_a_pump_that_lost_its_cancel(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    trap = Trap.script(lua.PUMP)
    admission = await _open(monkeypatch, trap, redis_url, key_prefix)
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    await admission.admit(team, 1, 1)
    waiter = asyncio.create_task(admission.admit(team, 1, 1))  # queued: the pump polls
    async with asyncio.timeout(1.0):
        await trap.sprung.wait()
    waiter.cancel()  # with nobody waiting, a pump that goes on parks on its wake event
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await _close_and_check(admission, trap)


async def test_close_stops_a_renewal_that_lost_its_cancel(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    trap = Trap.script(lua.RENEW)
    admission = await _open(monkeypatch, trap, redis_url, key_prefix, lease_seconds=0.15)
    await admission.admit(tenant("a", max_concurrent=1, queue_timeout=5), 1, 1)  # to renew
    await _close_and_check(admission, trap)


async def test_a_request_that_lost_its_cancel_leaves_the_queue(
    monkeypatch: pytest.MonkeyPatch, redis_url: str, key_prefix: str
) -> None:
    trap = Trap.script(lua.ADMIT)
    trap.armed = False
    admission = await _open(monkeypatch, trap, redis_url, key_prefix)
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    try:
        await admission.admit(team, 1, 1)
        trap.armed = True
        leaving = asyncio.create_task(admission.admit(team, 1, 1))  # to be queued
        async with asyncio.timeout(1.0):
            await trap.sprung.wait()
        leaving.cancel()  # its client left; ADMIT's reply comes back all the same
        await asyncio.wait([leaving], timeout=1.0)
        assert leaving.cancelled()  # not parked in the queue until queue_timeout
        async with asyncio.timeout(1.0):  # and taken out of the queue in Redis
            while (await admission.snapshot()).tenants["a"].queued:
                await asyncio.sleep(0.002)
    finally:
        await admission.close()
