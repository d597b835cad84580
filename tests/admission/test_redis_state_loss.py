"""The Redis backend when Redis loses its data or goes away, against a server of the test's own.

A FLUSHDB, a restart without persistence and a failover to an empty replica all leave the
scripts without their configuration: the next script must set it up again (and count the
replica's tickets again) instead of deciding with defaults (a window of one, no limits).
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from claude_proxy.admission import Admission, AdmissionSettings, open_admission
from claude_proxy.errors import RateLimited
from claude_proxy.state import StateUnavailable
from claude_proxy.tenancy import Tenant
from tests.admission.helpers import tenant, wait_queued
from tests.state.redis_server import RedisServer, StartRedis

Replica = Callable[..., Awaitable[Admission]]


@pytest.fixture
async def replica() -> AsyncIterator[Replica]:
    """``await replica(server, tenants, **settings)``: an admission backend, closed after."""
    opened: list[Admission] = []

    async def open_(server: RedisServer, tenants: list[Tenant], **fields: object) -> Admission:
        settings = AdmissionSettings.model_validate({"state": server.url, **fields})
        admission = await open_admission(settings, tenants)
        opened.append(admission)
        return admission

    yield open_
    for admission in opened:
        await admission.close()


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 2.0) -> None:
    async with asyncio.timeout(seconds):
        while not await check():
            await asyncio.sleep(0.02)


async def test_flushdb_sets_the_state_up_again(start_redis: StartRedis, replica: Replica) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=2, queue_timeout=0.2)
    admission = await replica(server, [team], upstream_max_concurrent=8)
    server.flushdb()
    # Unconfigured, the scripts used to see a window of one and no tenant window.
    tickets = [await admission.admit(team, 1, 1), await admission.admit(team, 1, 1)]
    with pytest.raises(RateLimited):
        await admission.admit(team, 1, 1)
    snapshot = await admission.snapshot()
    assert (snapshot.window, snapshot.upstream_max, snapshot.in_flight) == (8, 8, 2)
    for ticket in tickets:
        await ticket.release()
    await admission.on_upstream_status(200)  # the AIMD script found its window again


async def test_restart_without_persistence(start_redis: StartRedis, replica: Replica) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=1, queue_timeout=0.2)
    admission = await replica(server, [team], upstream_max_concurrent=4)
    server.kill()
    with pytest.raises(StateUnavailable) as caught:
        await admission.admit(team, 1, 1)
    assert caught.value.status == 503 and caught.value.headers["retry-after"] == "1"
    server.start()
    ticket = await admission.admit(team, 1, 1)  # the very next request after the restart
    with pytest.raises(RateLimited):
        await admission.admit(team, 1, 1)
    await ticket.release()
    assert (await admission.snapshot()).window == 4


async def test_every_pooled_connection_is_stale_after_a_restart(
    start_redis: StartRedis, replica: Replica
) -> None:
    server = start_redis()
    team = tenant("a", queue_timeout=1)
    admission = await replica(server, [team])
    for ticket in await asyncio.gather(*(admission.admit(team, 1, 1) for _ in range(8))):
        await ticket.release()  # several connections in the pool now
    server.restart()  # blocking: the event loop never saw the old connections close
    tickets = await asyncio.gather(*(admission.admit(team, 1, 1) for _ in range(8)))
    for ticket in tickets:
        await ticket.release()


async def test_restart_with_persistence_keeps_held_slots(
    start_redis: StartRedis, replica: Replica
) -> None:
    server = start_redis(persistent=True)
    team = tenant("a", max_concurrent=1, queue_timeout=0.2)
    admission = await replica(server, [team], lease_seconds=2)
    ticket = await admission.admit(team, 1, 1)
    server.kill()
    await until(lambda: _not(admission.healthy()))
    server.start()
    await until(admission.healthy)
    with pytest.raises(RateLimited):  # the held slot came back from the append-only file
        await admission.admit(team, 1, 1)
    await ticket.release()
    await (await admission.admit(team, 1, 1)).release()


async def test_held_tickets_are_counted_again_and_release_as_no_ops(
    start_redis: StartRedis, replica: Replica
) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=2, queue_timeout=0.2)
    holder = await replica(server, [team])
    other = await replica(server, [team])
    held = await holder.admit(team, 1, 1)
    server.flushdb()
    assert (await holder.snapshot()).tenants["a"].in_flight == 1  # counted again
    second = await other.admit(team, 1, 1)
    with pytest.raises(RateLimited):  # holder's slot still takes its place in the window
        await other.admit(team, 1, 1)
    await held.release()
    await second.release()
    assert (await other.snapshot()).tenants["a"].in_flight == 0
    third = await other.admit(team, 1, 1)
    server.flushdb()
    await third.release()  # a slot Redis lost is released without an error
    assert (await other.snapshot()).in_flight == 0


async def test_the_replica_that_sets_up_again_tells_the_others(
    start_redis: StartRedis, replica: Replica
) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=2, queue_timeout=0.2)
    holder = await replica(server, [team])  # renews every 10 s: too late to count
    other = await replica(server, [team])
    held = await holder.admit(team, 1, 1)
    server.flushdb()
    second = await other.admit(team, 1, 1)  # sets up again, and tells the holder

    async def both_counted() -> bool:
        return (await other.snapshot()).tenants["a"].in_flight == 2

    await until(both_counted, 1.0)
    with pytest.raises(RateLimited):
        await other.admit(team, 1, 1)
    await held.release()
    await second.release()


async def test_a_queued_request_is_queued_again(start_redis: StartRedis, replica: Replica) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=1, queue_timeout=3)
    holder = await replica(server, [team])
    waiter_side = await replica(server, [team])
    held = await holder.admit(team, 1, 1)
    waiting = asyncio.create_task(waiter_side.admit(team, 1, 1))
    await wait_queued(waiter_side, "a", 1)
    server.flushdb()
    await held.release()
    started = time.monotonic()
    async with asyncio.timeout(1.0):  # not at its queue_timeout: its queue entry came back
        ticket = await waiting
    assert time.monotonic() - started < 1.0
    await ticket.release()


async def test_replicas_that_find_the_state_gone_together(
    start_redis: StartRedis, replica: Replica
) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=3, queue_timeout=5)
    replicas = [await replica(server, [team]) for _ in range(3)]
    server.flushdb()
    holders = peak = 0

    async def call(admission: Admission) -> None:
        nonlocal holders, peak
        async with await admission.admit(team, 1, 1):
            holders += 1
            peak = max(peak, holders)
            await asyncio.sleep(0.005)
            holders -= 1

    await asyncio.gather(*(call(replicas[i % 3]) for i in range(45)))
    assert peak == 3


async def test_an_outage_is_logged_once_and_retried_with_backoff(
    start_redis: StartRedis, replica: Replica, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="claude_proxy.admission")
    server = start_redis()
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    admission = await replica(server, [team], lease_seconds=0.3)
    held = await admission.admit(team, 1, 1)  # renewed by one loop
    waiting = asyncio.create_task(admission.admit(team, 1, 1))  # polled by another
    await wait_queued(admission, "a", 1)
    server.kill()
    await asyncio.sleep(1.5)
    server.start()
    await until(lambda: _logged(caplog, "answers again"))
    await held.release()
    await (await waiting).release()
    assert len([m for m in caplog.messages if "is unavailable" in m]) == 1, caplog.messages
    back = [m for m in caplog.messages if "answers again" in m]
    assert len(back) == 1, caplog.messages
    failed = re.search(r"\((\d+) failed attempts\)", back[0])
    assert failed is not None and int(failed.group(1)) < 150  # backed off, did not spin


async def _not(value: Awaitable[bool]) -> bool:
    return not await value


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in message for message in caplog.messages)
