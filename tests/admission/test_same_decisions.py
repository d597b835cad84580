"""Memory and Redis admission decide alike: the same random schedule of admits and
releases grants, queues and refuses the same requests, in the same order.

Redis has shortcuts of its own (a request admitted with nobody waiting skips the queue;
a release with nobody waiting dispatches nothing) that must not change a decision. The
schedule mixes what they touch: a tenant's own window, the shared window, weights,
a per-minute token limit and spare slots kept for light tenants.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

import pytest

from claude_proxy.admission import Admission, AdmissionSettings, Ticket, Usage, open_admission
from claude_proxy.errors import RateLimited
from claude_proxy.tenancy import Tenant
from tests.admission.helpers import tenant

TENANTS = [
    tenant("a", max_concurrent=1, queue_timeout=60),
    tenant("b", weight=3, queue_timeout=60),
    # 250 output tokens a minute, 100 reserved a request and 50 used: the bucket runs
    # low, and a request that would wait past its queue timeout for it is refused at once.
    tenant("c", output_tokens_per_minute=250, queue_timeout=5),
    tenant("d", queue_timeout=60),
]
STEPS = 80
NEED = 100  # output tokens reserved by each request
# Spare slots off, and on with a horizon that outlasts the test (which tenants count as
# active must not depend on how long each backend took).
ACTIVE_SECONDS = (0, 600)


@dataclass
class Schedule:
    """Admits and releases as ("admit", tenant index) and ("release", pick)."""

    steps: list[tuple[str, int]] = field(default_factory=list)

    @classmethod
    def random(cls, seed: int) -> Schedule:
        rng = random.Random(seed)
        return cls(
            [
                ("admit", rng.randrange(len(TENANTS)))
                if rng.random() < 0.55
                else ("release", rng.randrange(1 << 30))
                for _ in range(STEPS)
            ]
        )


class Driver:
    """Runs a schedule on one backend; after each step, waits until it has settled and
    notes which requests hold a slot, which wait, which were refused."""

    def __init__(self, admission: Admission) -> None:
        self.admission = admission
        self.tasks: list[asyncio.Task[Ticket]] = []
        self.released: set[int] = set()

    async def run(self, schedule: Schedule) -> list[str]:
        trace = []
        for kind, value in schedule.steps:
            if kind == "admit":
                team = TENANTS[value]
                self.tasks.append(asyncio.create_task(self.admission.admit(team, 1, NEED)))
            else:
                held = self.holding()
                if held:
                    index = held[value % len(held)]
                    self.released.add(index)
                    await self.tasks[index].result().release(Usage(1, NEED // 2))
            await self.settled()
            trace.append(f"{kind} {value}: {self.describe()}")
        return trace

    def holding(self) -> list[int]:
        return [
            i
            for i, task in enumerate(self.tasks)
            if task.done()
            and not task.cancelled()
            and task.exception() is None
            and i not in self.released
        ]

    def describe(self) -> str:
        states = []
        for i, task in enumerate(self.tasks):
            if not task.done():
                states.append(f"{i}:wait")
            elif isinstance(task.exception(), RateLimited):
                states.append(f"{i}:refused")
            elif i not in self.released:
                states.append(f"{i}:hold")
        return " ".join(states)

    async def settled(self) -> None:
        """Until every request the backend counts as holding or queued is so here too
        (a grant to a waiter may reach it a moment after the release that made it)."""
        async with asyncio.timeout(5):
            while True:
                await asyncio.sleep(0)
                snapshot = await self.admission.snapshot()
                waiting = sum(not task.done() for task in self.tasks)
                if snapshot.in_flight == len(self.holding()) and snapshot.queued == waiting:
                    return
                await asyncio.sleep(0.001)

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for index in self.holding():
            await self.tasks[index].result().release()
        await self.admission.close()


async def trace_of(settings: AdmissionSettings, tenants: list[Tenant], seed: int) -> list[str]:
    driver = Driver(await open_admission(settings, tenants))
    try:
        return await driver.run(Schedule.random(seed))
    finally:
        await driver.close()


@pytest.mark.parametrize("active_seconds", ACTIVE_SECONDS)
@pytest.mark.parametrize("seed", range(8))
async def test_memory_and_redis_decide_alike(
    redis_url: str, key_prefix: str, seed: int, active_seconds: float
) -> None:
    common = {"upstream_max_concurrent": 4, "active_seconds": active_seconds}
    memory = await trace_of(AdmissionSettings(**common), TENANTS, seed)
    shared = await trace_of(
        AdmissionSettings(state=redis_url, key_prefix=key_prefix, **common), TENANTS, seed
    )
    for step, (want, got) in enumerate(zip(memory, shared, strict=True)):
        assert got == want, f"step {step}: memory and Redis differ"
    # The schedule reached the cases it is for: a waiter granted later, a refusal.
    states = [word for line in memory for word in line.split()]
    waited = {word.split(":")[0] for word in states if word.endswith(":wait")}
    assert any(f"{index}:hold" in states for index in waited)
    assert any(word.endswith(":refused") for word in states)
