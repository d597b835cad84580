from __future__ import annotations

import asyncio
from typing import Any

from claude_proxy.admission import Admission
from claude_proxy.tenancy import Tenant, TenantSettings


def tenant(name: str, **fields: Any) -> Tenant:
    return Tenant(
        name, TenantSettings.model_validate({"name": name, "keys": [f"k-{name}"], **fields})
    )


async def wait_queued(admission: Admission, tenant: str, count: int) -> None:
    """Wait until ``count`` requests of ``tenant`` are queued (within one second).

    The queue may live in Redis, written by another replica: there is no local event to
    wait on, so this polls the snapshot.
    """
    async with asyncio.timeout(1.0):
        while (await admission.snapshot()).tenants[tenant].queued < count:
            await asyncio.sleep(0.002)
