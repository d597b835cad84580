from __future__ import annotations

from claude_proxy.admission import Admission, AdmissionSettings, Usage, open_admission
from claude_proxy.admission.memory import MemoryAdmission
from claude_proxy.admission.redis import RedisAdmission
from tests.admission.helpers import tenant

# Checked by mypy: both backends are structurally an Admission (and return Tickets).
BACKENDS: tuple[type[Admission], ...] = (MemoryAdmission, RedisAdmission)


async def test_memory_is_chosen_by_url() -> None:
    admission = await open_admission(AdmissionSettings(), [tenant("a")])
    assert isinstance(admission, MemoryAdmission)
    snapshot = await admission.snapshot()
    assert snapshot.window == snapshot.upstream_max == 64
    assert snapshot.tenants["a"].in_flight == 0
    await admission.close()


async def test_redis_is_chosen_by_url(redis_url: str, key_prefix: str) -> None:
    settings = AdmissionSettings(state=redis_url, key_prefix=key_prefix)
    admission = await open_admission(settings, [tenant("a")])
    try:
        assert isinstance(admission, RedisAdmission)
        assert (await admission.snapshot()).window == 64
    finally:
        await admission.close()


def test_usage_from_api_ignores_missing_fields() -> None:
    usage = Usage.from_api({"input_tokens": 3, "cache_read_input_tokens": 7, "x": "y"})
    assert usage == Usage(input_tokens=3, cache_read_input_tokens=7)
    assert usage.rate_limited_input_tokens == 3
