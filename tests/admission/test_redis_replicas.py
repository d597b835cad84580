"""What only the Redis backend promises: one window across replicas, leases that expire."""

from __future__ import annotations

import asyncio
import time

import pytest

from claude_proxy.admission import Admission, AdmissionSettings, open_admission
from claude_proxy.errors import RateLimited
from claude_proxy.tenancy import Tenant
from tests.admission.helpers import tenant, wait_queued


async def _replica(url: str, prefix: str, tenants: list[Tenant], **fields: object) -> Admission:
    settings = AdmissionSettings.model_validate({"state": url, "key_prefix": prefix, **fields})
    return await open_admission(settings, tenants)


async def test_two_replicas_share_one_window(redis_url: str, key_prefix: str) -> None:
    team = tenant("a", max_concurrent=5, queue_timeout=5)
    replicas = [await _replica(redis_url, key_prefix, [team]) for _ in range(2)]
    holders = peak = 0

    async def call(replica: Admission) -> None:
        nonlocal holders, peak
        async with await replica.admit(team, 1, 1):
            holders += 1
            peak = max(peak, holders)
            await asyncio.sleep(0.002)
            holders -= 1

    try:
        await asyncio.gather(*(call(replicas[i % 2]) for i in range(50)))
    finally:
        for replica in replicas:
            await replica.close()
    assert peak == 5


async def test_dead_replicas_slot_is_freed_after_its_lease(redis_url: str, key_prefix: str) -> None:
    team = tenant("a", max_concurrent=1, queue_timeout=2)
    dead = await _replica(redis_url, key_prefix, [team], lease_seconds=0.5)
    alive = await _replica(redis_url, key_prefix, [team], lease_seconds=0.5)
    try:
        await dead.admit(team, 1, 1)
        await dead.close()  # no release, no renewal: as after SIGKILL
        started = time.monotonic()
        async with asyncio.timeout(1.5):
            ticket = await alive.admit(team, 1, 1)
        assert time.monotonic() - started < 1.0
        await ticket.release()
    finally:
        await alive.close()


async def test_held_leases_are_renewed(redis_url: str, key_prefix: str) -> None:
    team = tenant("a", max_concurrent=1, queue_timeout=0.6)
    holder = await _replica(redis_url, key_prefix, [team], lease_seconds=0.3)
    other = await _replica(redis_url, key_prefix, [team], lease_seconds=0.3)
    try:
        ticket = await holder.admit(team, 1, 1)
        waiting = asyncio.create_task(other.admit(team, 1, 1))
        await wait_queued(other, "a", 1)
        with pytest.raises(RateLimited):  # held twice the lease: still not freed
            await waiting
        await ticket.release()
        await (await other.admit(team, 1, 1)).release()
    finally:
        await holder.close()
        await other.close()
