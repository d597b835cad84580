"""The ``response_cache:`` section, for the gateway and per tenant.

```yaml
response_cache:
  enabled: false          # every tenant's default (the open gateway's only switch)
  ttl_seconds: 600
  allow_sampling: false   # cache requests sampled at temperature > 0 (or absent) too
  max_bytes: 134217728    # memory backend: all entries of this process, LRU beyond
  max_entry_bytes: 4194304  # one answer (JSON body or SSE bytes); unset: at most max_bytes
  url: null               # null: this process's memory, whatever `state` is; or redis://…
  lookup_timeout: 0.1     # Redis: seconds a lookup may take before it is passed by
  store_timeout: 0.2      # Redis: seconds a store may hold up the end of the answer
tenants:
  - name: search
    response_cache: {enabled: true, ttl_seconds: 3600}   # only the fields given replace
```
"""

from __future__ import annotations

from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from claude_proxy.overlay import overlay

__all__ = ["SCHEMES", "ResponseCachePolicy", "ResponseCacheSettings", "merged"]

DEFAULT_MAX_ENTRY_BYTES = 4 * 1024 * 1024
# The stores a URL may name (the registry maps each to a backend).
SCHEMES = frozenset({"memory", "redis", "rediss", "unix"})


_INT = TypeAdapter(int)


class ResponseCachePolicy(BaseModel):
    """Whether a tenant's answers are cached, for how long, and which requests qualify."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    ttl_seconds: float = Field(default=600.0, gt=0)
    """An entry answers identical requests this long after it was stored (never refreshed:
    the bound on how stale an answer may be)."""
    allow_sampling: bool = False
    """Also cache requests that sample (``temperature`` absent or above 0): the same answer
    then comes back where the API would have drawn another. Models and API versions that
    refuse ``temperature`` can only be cached with this on."""


class ResponseCacheSettings(ResponseCachePolicy):
    """The gateway's defaults for every tenant, plus the store's bounds and place."""

    max_bytes: int = Field(default=128 * 1024 * 1024, ge=1)
    """Memory backend: bytes of answers held by one process, each counted with its key and
    ~400 bytes of bookkeeping (``memory.ENTRY_OVERHEAD``); least recently used go first."""
    max_entry_bytes: int = Field(default=DEFAULT_MAX_ENTRY_BYTES, ge=1)
    """An answer larger than this (JSON body, or a stream's SSE bytes) is not stored.
    Unset, it is 4 MiB, or ``max_bytes`` when that is smaller."""
    url: str = "memory://"
    """The store: ``memory://`` (or null) for this process's memory (bounded by
    ``max_bytes``), whatever ``state`` is; ``redis://…`` to share answers between
    replicas, best a Redis of its own with ``maxmemory`` and ``allkeys-lru``, which
    bounds the total there (the ``state`` Redis is not used unless named here: answers
    would crowd out its limits and streams)."""
    key_prefix: str = "claude-proxy:response-cache:"
    """Redis backend: every key starts with this."""
    lookup_timeout: float = Field(default=0.1, gt=0)
    """Redis backend: seconds a lookup may take; a slower one is passed by (the request
    goes upstream), and the store is then passed by at no cost until a background PING
    finds it answering again."""
    store_timeout: float = Field(default=0.2, gt=0)
    """Redis backend: seconds a store may take. It is awaited before the end of the
    answer is sent (so the next identical request finds it); a store slower than this is
    given up, and counts as an outage as a slow lookup does."""

    @field_validator("url", mode="before")
    @classmethod
    def _known_scheme(cls, value: object) -> object:
        if value is None:
            return "memory://"
        if isinstance(value, str) and urlsplit(value).scheme not in SCHEMES:
            known = ", ".join(f"{name}://" for name in sorted(SCHEMES))
            raise ValueError(f"unknown response cache scheme; use one of {known}")
        return value

    @model_validator(mode="before")
    @classmethod
    def _entry_within_total(cls, data: object) -> object:
        # Setting only a small max_bytes must not be refused for a default the operator
        # never wrote: the entry bound follows the total down. The total is read as its
        # field reads it (1000.0 and "1_000" are ints there too); a bad one is left for
        # the field to refuse.
        if isinstance(data, dict) and "max_entry_bytes" not in data and "max_bytes" in data:
            try:
                total = _INT.validate_python(data["max_bytes"])
            except ValidationError:
                return data
            return {**data, "max_entry_bytes": max(1, min(DEFAULT_MAX_ENTRY_BYTES, total))}
        return data

    @model_validator(mode="after")
    def _entry_fits(self) -> ResponseCacheSettings:
        if self.max_entry_bytes > self.max_bytes:
            raise ValueError("max_entry_bytes must not exceed max_bytes")
        return self


def merged(base: ResponseCachePolicy, override: ResponseCachePolicy | None) -> ResponseCachePolicy:
    """A tenant's policy: the fields it sets over the gateway's."""
    policy = ResponseCachePolicy(
        enabled=base.enabled, ttl_seconds=base.ttl_seconds, allow_sampling=base.allow_sampling
    )
    return overlay(policy, override)
