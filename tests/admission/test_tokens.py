"""Per-minute request and token limits: no overshoot, and reconciliation with usage."""

from __future__ import annotations

import asyncio

import pytest

from claude_proxy.admission import Ticket, Usage
from claude_proxy.errors import RateLimited
from tests.admission.conftest import MakeAdmission
from tests.admission.helpers import tenant


async def _admit_many(make_admission: MakeAdmission, count: int) -> tuple[list[Ticket], int]:
    team = tenant("a", input_tokens_per_minute=1_000, queue_timeout=0.2)
    admission = await make_admission([team])
    results = await asyncio.gather(
        *(admission.admit(team, 100, 10) for _ in range(count)), return_exceptions=True
    )
    tickets = [r for r in results if not isinstance(r, BaseException)]
    limited = [r for r in results if isinstance(r, RateLimited)]
    assert len(tickets) + len(limited) == count
    return tickets, len(limited)


async def test_input_tokens_never_overshoot(make_admission: MakeAdmission) -> None:
    tickets, limited = await _admit_many(make_admission, 100)
    assert len(tickets) == 10
    assert limited == 90


async def test_reconcile_returns_unused_tokens(make_admission: MakeAdmission) -> None:
    team = tenant(
        "a", input_tokens_per_minute=1_000, output_tokens_per_minute=1_000, queue_timeout=0.1
    )
    admission = await make_admission([team])
    first = await admission.admit(team, 600, 900)
    with pytest.raises(RateLimited) as caught:
        await admission.admit(team, 500, 10)
    assert caught.value.headers["anthropic-ratelimit-input-tokens-remaining"] == "400"
    # Real usage: 100 input + 50 cache writes count; cache reads do not; 20 output.
    usage = Usage.from_api(
        {
            "input_tokens": 100,
            "cache_creation_input_tokens": 50,
            "cache_read_input_tokens": 5_000,
            "output_tokens": 20,
        }
    )
    await first.release(usage)
    await first.release(Usage(input_tokens=1_000))  # a second release changes nothing
    second = await admission.admit(team, 840, 970)
    with pytest.raises(RateLimited):
        await admission.admit(team, 20, 10)
    await second.release(None)  # nothing consumed upstream: everything comes back
    await (await admission.admit(team, 840, 970)).release()


async def test_request_larger_than_the_limit_is_refused_at_once(
    make_admission: MakeAdmission,
) -> None:
    team = tenant("a", output_tokens_per_minute=1_000, queue_timeout=5)
    admission = await make_admission([team])
    with pytest.raises(RateLimited) as caught:
        await admission.admit(team, 1, 4_096)
    assert caught.value.headers["retry-after"] == "60"


async def test_requests_per_minute(make_admission: MakeAdmission) -> None:
    team = tenant("a", requests_per_minute=3, queue_timeout=0.1)
    admission = await make_admission([team])
    for _ in range(3):
        await (await admission.admit(team, 1, 1)).release()
    with pytest.raises(RateLimited) as caught:
        await admission.admit(team, 1, 1)
    assert caught.value.headers["anthropic-ratelimit-requests-remaining"] == "0"
    assert int(caught.value.headers["retry-after"]) in (20, 21)
