"""An admission factory over both backends, and tenants for the tests."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from claude_proxy.admission import Admission, AdmissionSettings, open_admission
from claude_proxy.admission.base import NO_OBSERVER, AdmissionObserver
from claude_proxy.tenancy import Tenant
from tests.state.redis_fixtures import key_prefix, redis_url
from tests.state.redis_server import start_redis

__all__ = ["key_prefix", "redis_url", "start_redis"]

MakeAdmission = Callable[..., Awaitable[Admission]]


@pytest.fixture(params=["memory", "redis"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_admission(
    backend: str, request: pytest.FixtureRequest
) -> AsyncIterator[MakeAdmission]:
    """``await make(tenants, observer=..., **settings)``: a started backend, closed after
    the test.

    Calling it twice gives two replicas sharing one state (for redis).
    """
    state = "memory://"
    prefix = "unused:"
    if backend == "redis":
        state = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("key_prefix")
    opened: list[Admission] = []

    async def make(
        tenants: list[Tenant], observer: AdmissionObserver = NO_OBSERVER, **fields: Any
    ) -> Admission:
        settings = AdmissionSettings(state=state, key_prefix=prefix, **fields)
        admission = await open_admission(settings, tenants, observer)
        opened.append(admission)
        return admission

    yield make
    for admission in opened:
        await admission.close()
