"""The prompt_caching: section as users write it, and a tenant's override."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from claude_proxy.config import load_settings
from claude_proxy.prompt_cache import PromptCacheSettings, merged


def test_on_by_default_with_five_minutes() -> None:
    assert PromptCacheSettings() == PromptCacheSettings(enabled=True, ttl="5m", min_tokens={})


def test_yaml_with_a_tenant_override(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        "upstreams: [{api_key: sk-up}]\n"
        "prompt_caching: {ttl: 1h, min_tokens: {'claude-x-*': 2048, 'claude-y': 512}}\n"
        "tenants:\n"
        "  - {name: a, keys: [ka], prompt_caching: {enabled: off}}\n"
        "  - {name: b, keys: [kb], prompt_caching: {min_tokens: {claude-y: 900}}}\n"
        "  - {name: c, keys: [kc]}\n"
    )
    settings = load_settings(config)
    gateway = settings.prompt_caching
    assert gateway.ttl == "1h" and gateway.enabled
    a, b, c = (merged(gateway, tenant.prompt_caching) for tenant in settings.tenants)
    assert not a.enabled and a.ttl == "1h"  # only what the tenant sets is replaced
    assert b.enabled and b.min_tokens == {"claude-y": 900, "claude-x-*": 2048}
    assert c == gateway


@pytest.mark.parametrize("fields", [{"ttl": "10m"}, {"min_tokens": {"x": 0}}, {"lifetime": 1}])
def test_mistakes_are_named(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        PromptCacheSettings(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("glob", "why"),
    [
        ("[", "'[' without its ']'"),
        ("claude-[opus-*", "'[' without its ']'"),
        ("claude-[[a]]", "'[' inside [...]"),
        ("claude opus", "letters, digits"),
        ("", "bad model glob ''"),
    ],
)
def test_a_min_tokens_glob_that_would_never_match_is_refused(glob: str, why: str) -> None:
    """Checked as the policies' model globs are: fnmatch would read a lone '[' as
    itself, and the minimum would silently never apply."""
    with pytest.raises(ValidationError, match=re.escape(why)):
        PromptCacheSettings(min_tokens={glob: 2048})
    assert PromptCacheSettings(min_tokens={"claude-[os]*-4-?": 2048}).min_tokens
