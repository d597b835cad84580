"""``admission.on_state_failure``: refuse while Redis is down (closed), or admit on this
replica's own limits until it answers again (open)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from claude_proxy.admission import Admission, AdmissionSettings, open_admission
from claude_proxy.admission.memory import MemoryAdmission
from claude_proxy.errors import RateLimited
from claude_proxy.state import StateUnavailable
from claude_proxy.tenancy import Tenant
from tests.admission.helpers import tenant
from tests.state.redis_server import RedisServer, StartRedis

PREFIX = "fail-open:"


class Counting:
    """An observer that also counts requests admitted without the shared state."""

    def __init__(self) -> None:
        self.without_shared: list[str | None] = []

    def tenant_waiting(self, tenant: str | None, delta: int) -> None:
        pass

    def tenant_holding(self, tenant: str | None, delta: int) -> None:
        pass

    def admitted_without_shared_state(self, tenant: str | None) -> None:
        self.without_shared.append(tenant)


Open = Callable[..., Awaitable[Admission]]


@pytest.fixture
async def open_() -> AsyncIterator[Open]:
    opened: list[Admission] = []

    async def open_(
        state: str, tenants: list[Tenant], observer: Counting | None = None, **fields: object
    ) -> Admission:
        settings = AdmissionSettings.model_validate(
            {"state": state, "key_prefix": PREFIX, **fields}
        )
        admission = await open_admission(settings, tenants, observer or Counting())
        opened.append(admission)
        return admission

    yield open_
    for admission in opened:
        await admission.close()


def shared_slots(server: RedisServer) -> int:
    with server.client() as client:
        return int(client.zcard(PREFIX + "slots"))


async def test_closed_by_default(start_redis: StartRedis, open_: Open) -> None:
    server = start_redis()
    team = tenant("a", queue_timeout=0.2)
    admission = await open_(server.url, [team])
    server.kill()
    with pytest.raises(StateUnavailable) as caught:
        await admission.admit(team, 1, 1)
    assert caught.value.status == 503
    assert caught.value.error_type == "api_error"
    assert caught.value.headers == {"retry-after": "1"}
    assert not await admission.healthy()


async def test_open_admits_on_local_limits_then_returns_to_shared(
    start_redis: StartRedis, open_: Open
) -> None:
    server = start_redis()
    team = tenant("a", max_concurrent=1, queue_timeout=0.2)
    observer = Counting()
    admission = await open_(server.url, [team], observer, on_state_failure="open")
    server.kill()
    local = await admission.admit(team, 1, 1)  # admitted though Redis is down
    with pytest.raises(RateLimited):  # the tenant's window still holds, on this replica
        await admission.admit(team, 1, 1)
    assert observer.without_shared == ["a"]
    assert not await admission.healthy()
    await local.release()
    server.start()
    async with asyncio.timeout(3):  # within about a second: the health check's cache
        while True:
            ticket = await admission.admit(team, 1, 1)
            if shared_slots(server) == 1:
                break
            await ticket.release()
            await asyncio.sleep(0.05)
    await ticket.release()
    assert shared_slots(server) == 0
    assert await admission.healthy()


async def test_open_with_memory_state_is_memory_alone(open_: Open) -> None:
    admission = await open_("memory://", [tenant("a")], on_state_failure="open")
    assert isinstance(admission, MemoryAdmission)
    assert await admission.healthy()
