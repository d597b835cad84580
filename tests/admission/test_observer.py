"""Each backend tells its observer (the metrics) what this process waits for and holds."""

from __future__ import annotations

import asyncio
import contextlib

from claude_proxy.observability import Metrics
from tests.admission.conftest import MakeAdmission
from tests.admission.helpers import tenant, wait_queued


def load(metrics: Metrics, name: str) -> tuple[float, float]:
    """(holding, waiting) of ``name`` as the gauges show them."""
    tenants = metrics.snapshot()["tenants"]
    entry = tenants.get(name, {"in_flight": 0.0, "queued": 0.0})
    return entry["in_flight"], entry["queued"]


async def test_the_gauges_follow_grants_waits_and_releases(make_admission: MakeAdmission) -> None:
    metrics = Metrics(["a", "b"])
    a, b = tenant("a", queue_timeout=10), tenant("b", queue_timeout=10)
    admission = await make_admission([a, b], observer=metrics, upstream_max_concurrent=1)

    first = await admission.admit(a, 1, 1)
    assert load(metrics, "a") == (1, 0)  # granted at once: no wait counted
    second = asyncio.create_task(admission.admit(a, 1, 1))
    gives_up = asyncio.create_task(admission.admit(b, 1, 1))
    await wait_queued(admission, "a", 1)
    await wait_queued(admission, "b", 1)
    assert load(metrics, "a") == (1, 1)
    assert load(metrics, "b") == (0, 1)

    gives_up.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await gives_up
    assert load(metrics, "b") == (0, 0)  # a client that left the queue is not waiting

    await first.release()
    ticket = await second
    assert load(metrics, "a") == (1, 0)
    await ticket.release()
    await ticket.release()  # idempotent, and so is the count
    assert load(metrics, "a") == (0, 0)
