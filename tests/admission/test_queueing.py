"""Queue timeouts, cancellation and the adaptive window, on both backends."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from claude_proxy.errors import RateLimited
from tests.admission.conftest import MakeAdmission
from tests.admission.helpers import tenant, wait_queued

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


async def test_queue_timeout_answers_429_with_headers(make_admission: MakeAdmission) -> None:
    team = tenant(
        "a",
        max_concurrent=1,
        queue_timeout=0.2,
        requests_per_minute=100,
        input_tokens_per_minute=10_000,
        output_tokens_per_minute=2_000,
    )
    admission = await make_admission([team])
    held = await admission.admit(team, 1_000, 500)
    started = time.monotonic()
    with pytest.raises(RateLimited) as caught:
        await admission.admit(team, 10, 10)
    assert 0.15 < time.monotonic() - started < 1.0
    headers = caught.value.headers
    assert caught.value.status == 429
    assert headers["retry-after"] == "1"
    assert headers["anthropic-ratelimit-requests-limit"] == "100"
    assert headers["anthropic-ratelimit-requests-remaining"] == "99"
    assert headers["anthropic-ratelimit-input-tokens-limit"] == "10000"
    # The buckets refill continuously (10,000/min = 167/s) while the caller waits.
    assert 9000 <= int(headers["anthropic-ratelimit-input-tokens-remaining"]) < 9100
    assert 1500 <= int(headers["anthropic-ratelimit-output-tokens-remaining"]) < 1520
    assert RFC3339.match(headers["anthropic-ratelimit-requests-reset"])
    assert "'a'" in caught.value.message
    await held.release()
    snapshot = await admission.snapshot()
    assert snapshot.tenants["a"].queued == 0
    await (await admission.admit(team, 10, 10)).release()


async def test_cancelled_waiter_leaves_the_queue(make_admission: MakeAdmission) -> None:
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    admission = await make_admission([team])
    held = await admission.admit(team, 1, 1)
    gone = asyncio.create_task(admission.admit(team, 1, 1))
    await wait_queued(admission, "a", 1)
    nxt = asyncio.create_task(admission.admit(team, 1, 1))
    await wait_queued(admission, "a", 2)
    gone.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone
    await held.release()
    async with asyncio.timeout(1):
        ticket = await nxt
    snapshot = await admission.snapshot()
    assert snapshot.tenants["a"].in_flight == 1
    assert snapshot.tenants["a"].queued == 0
    await ticket.release()
    await ticket.release()  # twice is harmless
    assert (await admission.snapshot()).tenants["a"].in_flight == 0


async def test_aimd_window_shrinks_and_grows(make_admission: MakeAdmission) -> None:
    team = tenant("a", queue_timeout=5)
    admission = await make_admission(
        [team], upstream_max_concurrent=8, window_min=2, decrease_cooldown=0
    )
    for status, window in ((429, 4), (529, 2), (429, 2)):
        await admission.on_upstream_status(status)
        assert (await admission.snapshot()).window == window
    held = [await admission.admit(team, 1, 1) for _ in range(2)]
    waiting = asyncio.create_task(admission.admit(team, 1, 1))
    await wait_queued(admission, "a", 1)
    await admission.on_upstream_status(400)  # neither success nor congestion
    await admission.on_upstream_status(200)
    assert (await admission.snapshot()).window == 2
    await admission.on_upstream_status(200)  # a full window of successes: +1
    async with asyncio.timeout(1):
        held.append(await waiting)
    assert (await admission.snapshot()).window == 3
    for _ in range(3 + 4 + 5 + 6 + 10):
        await admission.on_upstream_status(200)
    assert (await admission.snapshot()).window == 8
    for ticket in held:
        await ticket.release()


async def test_decrease_happens_once_per_cooldown(make_admission: MakeAdmission) -> None:
    team = tenant("a")
    admission = await make_admission([team], upstream_max_concurrent=16, decrease_cooldown=30)
    for _ in range(5):
        await admission.on_upstream_status(529)
    assert (await admission.snapshot()).window == 8


async def test_a_release_that_meets_a_just_cancelled_waiter_grants_the_next_one(
    make_admission: MakeAdmission,
) -> None:
    # Shutdown's drain, or clients leaving together: a queued caller is cancelled and a
    # slot is released before the cancelled caller has run again to leave the queue.
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    admission = await make_admission([team])
    held = await admission.admit(team, 1, 1)
    leaving = asyncio.create_task(admission.admit(team, 1, 1))
    staying = asyncio.create_task(admission.admit(team, 1, 1))
    await wait_queued(admission, "a", 2)
    leaving.cancel()
    await held.release()  # in the same step: the cancelled waiter is still queued
    with pytest.raises(asyncio.CancelledError):
        await leaving
    async with asyncio.timeout(2):
        ticket = await staying
    await ticket.release()
    assert (await admission.snapshot()).tenants["a"].in_flight == 0
