"""Automatic prompt caching: ``cache_control`` breakpoints on long, stable prefixes."""

from claude_proxy.prompt_cache.breakpoints import (
    MAX_BREAKPOINTS,
    Breakpoint,
    Outcome,
    Plan,
    plan,
)
from claude_proxy.prompt_cache.minimums import min_cacheable_tokens
from claude_proxy.prompt_cache.settings import PromptCacheSettings, Ttl, merged

__all__ = [
    "MAX_BREAKPOINTS",
    "Breakpoint",
    "Outcome",
    "Plan",
    "PromptCacheSettings",
    "Ttl",
    "merged",
    "min_cacheable_tokens",
    "plan",
]
