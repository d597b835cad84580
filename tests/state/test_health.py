"""The cached health check behind /readyz: cheap, one probe at a time, never raising."""

from __future__ import annotations

import asyncio

import pytest

from claude_proxy.state.health import HealthCheck


class Probe:
    def __init__(self) -> None:
        self.calls = 0
        self.fail: Exception | None = None
        self.hang = False
        self.release = asyncio.Event()

    async def __call__(self) -> None:
        self.calls += 1
        if self.hang:
            await asyncio.Event().wait()
        await self.release.wait()
        if self.fail is not None:
            raise self.fail


async def test_one_probe_for_callers_at_once_and_cached_for_its_ttl() -> None:
    probe = Probe()
    check = HealthCheck(probe, ttl=60)
    callers = [asyncio.create_task(check.healthy()) for _ in range(20)]
    await asyncio.sleep(0)
    probe.release.set()
    assert await asyncio.gather(*callers) == [True] * 20
    assert await check.healthy()
    assert probe.calls == 1


async def test_a_failing_or_stalled_probe_is_unhealthy_and_never_raises() -> None:
    probe = Probe()
    probe.release.set()
    probe.fail = ConnectionError("refused")
    check = HealthCheck(probe, ttl=0)
    assert not await check.healthy()
    probe.fail, probe.hang = None, True
    stalled = HealthCheck(probe, ttl=0, timeout=0.05)
    async with asyncio.timeout(1):
        assert not await stalled.healthy()


async def test_a_cancelled_caller_does_not_cancel_the_probe_of_the_others() -> None:
    probe = Probe()
    check = HealthCheck(probe, ttl=60)
    leaving = asyncio.create_task(check.healthy())
    staying = asyncio.create_task(check.healthy())
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    probe.release.set()
    assert await staying
    assert probe.calls == 1


async def test_observed_results_count_as_probes() -> None:
    probe = Probe()
    probe.release.set()
    check = HealthCheck(probe, ttl=60)
    check.observed(False)
    assert not await check.healthy()
    check.observed(True)
    assert await check.healthy()
    assert probe.calls == 0
    await check.close()
