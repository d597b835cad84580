"""The response_cache section: defaults, per-tenant overrides, bounds, and where it is kept."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from claude_proxy.config import Settings
from claude_proxy.response_cache import ResponseCachePolicy, ResponseCacheSettings, merged


def test_a_tenant_sets_only_what_it_names() -> None:
    base = ResponseCacheSettings(enabled=True, ttl_seconds=120, allow_sampling=False)
    assert merged(base, None) == ResponseCachePolicy(enabled=True, ttl_seconds=120)
    tenant = ResponseCachePolicy(allow_sampling=True)
    assert merged(base, tenant) == ResponseCachePolicy(
        enabled=True, ttl_seconds=120, allow_sampling=True
    )
    assert not merged(base, ResponseCachePolicy(enabled=False)).enabled


def test_off_by_default_and_in_memory_whatever_the_state() -> None:
    """The ``state`` Redis holds limits and streams: answers go there only when named."""
    settings = Settings(
        state="redis://cache.internal:6379/2", admission={"key_prefix": "x:admission:"}
    )
    assert not settings.response_cache.enabled
    resolved = settings.response_cache_settings
    assert resolved.url == "memory://"
    assert resolved.key_prefix == "x:response-cache:"
    own = Settings(response_cache={"url": "redis://cache.internal:6379/2", "key_prefix": "mine:"})
    assert own.response_cache_settings.url == "redis://cache.internal:6379/2"
    assert own.response_cache_settings.key_prefix == "mine:"


@pytest.mark.parametrize(
    ("section", "problem"),
    [
        ({"max_entry_bytes": 2000, "max_bytes": 1000}, "max_entry_bytes must not exceed"),
        ({"url": "postgresql://db/x"}, "unknown response cache scheme"),
        ({"ttl_seconds": 0}, "greater than 0"),
        ({"enabled": True, "size": 3}, "Extra inputs"),
    ],
)
def test_bad_sections_are_refused_naming_the_field(
    section: dict[str, object], problem: str
) -> None:
    with pytest.raises(ValidationError, match=problem):
        Settings(response_cache=section)


def test_a_small_max_bytes_alone_brings_the_entry_bound_down_with_it() -> None:
    small = Settings(response_cache={"enabled": True, "max_bytes": 2 * 1024 * 1024})
    assert small.response_cache.max_entry_bytes == 2 * 1024 * 1024
    from_variable = Settings(response_cache={"max_bytes": "1048576"})  # ${VAR} in the YAML
    assert from_variable.response_cache.max_entry_bytes == 1024 * 1024
    for written in (1000.0, "1_000", " 1000 "):  # what the field itself reads as 1000
        assert (
            Settings(response_cache={"max_bytes": written}).response_cache.max_entry_bytes == 1000
        )
    assert Settings().response_cache.max_entry_bytes == 4 * 1024 * 1024
    both = ResponseCacheSettings(max_bytes=1000, max_entry_bytes=100)
    assert both.max_entry_bytes == 100


def test_tenant_sections_are_checked_too() -> None:
    with pytest.raises(ValidationError, match="response_cache"):
        Settings(
            upstreams=[{"api_key": "sk-up"}],
            tenants=[{"name": "a", "keys": ["k"], "response_cache": {"ttl_seconds": -1}}],
        )
