"""Concurrency windows, FIFO order and weighted fairness, on both backends."""

from __future__ import annotations

import asyncio

from claude_proxy.admission import Ticket
from tests.admission.conftest import MakeAdmission
from tests.admission.helpers import tenant, wait_queued


async def test_burst_never_exceeds_tenant_window(make_admission: MakeAdmission) -> None:
    team = tenant("a", max_concurrent=5, queue_timeout=5)
    admission = await make_admission([team])
    holders = peak = 0

    async def call() -> None:
        nonlocal holders, peak
        async with await admission.admit(team, 10, 10):
            holders += 1
            peak = max(peak, holders)
            await asyncio.sleep(0.001)
            holders -= 1

    await asyncio.gather(*(call() for _ in range(50)))
    assert peak == 5
    # A release waits for Redis at most SETTLE_SECONDS (the answer must not wait on a
    # slow store), then lands on its own: on a busy machine, a moment after the call.
    async with asyncio.timeout(5):
        while (snapshot := await admission.snapshot()).in_flight:
            await asyncio.sleep(0.01)
    assert snapshot.in_flight == 0
    assert snapshot.tenants["a"].in_flight == 0
    assert snapshot.tenants["a"].queued == 0


async def test_upstream_window_caps_all_tenants(make_admission: MakeAdmission) -> None:
    teams = [tenant(name, queue_timeout=5) for name in "abc"]
    admission = await make_admission(teams, upstream_max_concurrent=4)
    holders = peak = 0

    async def call(index: int) -> None:
        nonlocal holders, peak
        ticket = await admission.admit(teams[index % 3], 1, 1)
        holders += 1
        peak = max(peak, holders)
        await asyncio.sleep(0.001)
        holders -= 1
        await ticket.release()

    await asyncio.gather(*(call(i) for i in range(30)))
    assert peak == 4


async def test_fifo_within_a_tenant(make_admission: MakeAdmission) -> None:
    team = tenant("a", max_concurrent=1, queue_timeout=5)
    admission = await make_admission([team])
    blocker = await admission.admit(team, 1, 1)
    order: list[int] = []

    async def call(index: int) -> None:
        async with await admission.admit(team, 1, 1):
            order.append(index)

    tasks = []
    for index in range(6):
        tasks.append(asyncio.create_task(call(index)))
        await wait_queued(admission, "a", index + 1)
    await blocker.release()
    await asyncio.gather(*tasks)
    assert order == list(range(6))


async def test_weighted_fair_queueing_lets_the_light_tenant_through(
    make_admission: MakeAdmission,
) -> None:
    flood = tenant("flood", weight=1, queue_timeout=5)
    light = tenant("light", weight=2, queue_timeout=5)
    admission = await make_admission([flood, light], upstream_max_concurrent=1)
    blocker = await admission.admit(flood, 1, 1)
    grants: list[str] = []

    async def call(who: str) -> None:
        team = flood if who == "flood" else light
        async with await admission.admit(team, 1, 1):
            grants.append(who)

    # The flood arrives first and is 10x the light tenant's load: FIFO would starve B.
    tasks = [asyncio.create_task(call("flood")) for _ in range(40)]
    await wait_queued(admission, "flood", 40)
    tasks += [asyncio.create_task(call("light")) for _ in range(4)]
    await wait_queued(admission, "light", 4)
    await blocker.release()
    await asyncio.gather(*tasks)

    # Weight 2 against 1: two light grants per flood grant while both wait.
    assert grants[:6].count("light") == 4
    assert max(i for i, who in enumerate(grants) if who == "light") <= 6


async def test_tenant_window_does_not_block_others(make_admission: MakeAdmission) -> None:
    small = tenant("small", max_concurrent=1, queue_timeout=5)
    other = tenant("other", queue_timeout=5)
    admission = await make_admission([small, other], upstream_max_concurrent=4)
    held = await admission.admit(small, 1, 1)
    waiting = asyncio.create_task(admission.admit(small, 1, 1))
    await wait_queued(admission, "small", 1)
    # The queued head of `small` cannot run; `other` must not wait behind it.
    async with asyncio.timeout(1):
        tickets: list[Ticket] = [await admission.admit(other, 1, 1) for _ in range(3)]
    await held.release()
    async with asyncio.timeout(1):
        await (await waiting).release()
    for ticket in tickets:
        await ticket.release()


async def test_a_free_slot_goes_to_the_tenant_holding_fewer(make_admission: MakeAdmission) -> None:
    """Equal fair-queueing tags: the tenant with fewer slots wins, whatever the order."""
    a, b = tenant("a", queue_timeout=5), tenant("b", queue_timeout=5)
    admission = await make_admission([a, b], upstream_max_concurrent=3, active_seconds=0)
    held_a = [await admission.admit(a, 1, 1), await admission.admit(a, 1, 1)]
    held_b = await admission.admit(b, 1, 1)
    a_next = asyncio.create_task(admission.admit(a, 1, 1))
    await wait_queued(admission, "a", 1)
    b_next = asyncio.create_task(admission.admit(b, 1, 1))
    await wait_queued(admission, "b", 1)
    await held_b.release()  # a holds 2, b none; their next finish times are equal
    granted = await asyncio.wait_for(b_next, 2)
    assert not a_next.done()
    await granted.release()
    for ticket in held_a:
        await ticket.release()
    await (await asyncio.wait_for(a_next, 2)).release()
