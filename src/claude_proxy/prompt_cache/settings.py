"""The ``prompt_caching:`` section: automatic cache breakpoints, for the gateway and per tenant.

```yaml
prompt_caching:
  enabled: true          # on by default
  ttl: 5m                # 5m (writes cost 1.25x) or 1h (2x, kept an hour)
  min_tokens: {"claude-opus-4-5*": 4096}   # model glob -> minimum cacheable prefix
tenants:
  - name: batch
    prompt_caching: {enabled: false}   # only the fields given replace the gateway's
```
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from claude_proxy.globs import model_glob
from claude_proxy.overlay import overlay

__all__ = ["PromptCacheSettings", "Ttl", "merged"]

Ttl = Literal["5m", "1h"]


class PromptCacheSettings(BaseModel):
    """Where the gateway adds ``cache_control`` breakpoints the client did not set."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    ttl: Ttl = "5m"
    """The TTL of the breakpoints added (a client's own 1h ones may make some 1h, its
    5m ones make later ones 5m: the API wants 1h entries before 5m ones)."""
    min_tokens: dict[str, int] = Field(default_factory=dict)
    """Model name globs to the shortest prefix worth a breakpoint, over the built-in
    table (``prompt_cache.minimums``); the first glob that matches wins."""

    @field_validator("min_tokens")
    @classmethod
    def _positive(cls, value: dict[str, int]) -> dict[str, int]:
        for glob in value:
            model_glob(glob)  # as the policies' model globs: none that can never match
        bad = sorted(glob for glob, tokens in value.items() if tokens < 1)
        if bad:
            raise ValueError(f"min_tokens must be at least 1 (for {bad})")
        return value


def merged(base: PromptCacheSettings, override: PromptCacheSettings | None) -> PromptCacheSettings:
    """A tenant's settings: the fields it sets over the gateway's; ``min_tokens`` merged
    glob by glob, the tenant's first."""
    if override is None:
        return base
    own = override.min_tokens
    rest = {glob: tokens for glob, tokens in base.min_tokens.items() if glob not in own}
    return overlay(base, override, min_tokens={**own, **rest})
