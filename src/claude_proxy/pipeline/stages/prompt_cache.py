"""The ``prompt_cache`` stage: cache breakpoints on long, stable prefixes the client left unmarked.

Where a request's prompt reaches the model's minimum cacheable length, the plan
(``prompt_cache.breakpoints``) adds ``cache_control`` to the end of the prompt, a
previous turn's end out of the API's look-back, the stable part of the last message
(a document before its question), the last system block and the last tool, within the
API's rules. A request that gets none goes upstream byte for byte. It runs after
redaction, so the breakpoints are on the final content. Per request,
``x-proxy-prompt-cache: off | 5m | 1h`` turns it off or sets the TTL (it cannot turn
on what the configuration turns off); the ``x-proxy-prompt-cache`` response header says
what was done: ``added=2; at=system,messages; ttl=5m``, or ``added=0; reason=short``
(``automatic``, ``full``, ``covered``, ``invalid``), or ``off``.

Only ``/v1/messages`` (JSON, SSE, WebSocket): ``count_tokens`` counts what the client
sent, and message batches are relayed as they are, streamed rather than parsed (their
results come back within a day, and cache hits in a batch are the API's best effort).
In the chain when the gateway or any tenant has it on.
"""

from __future__ import annotations

from dataclasses import dataclass

from claude_proxy.errors import InvalidRequest
from claude_proxy.observability import Metrics
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.prompt_cache import (
    Plan,
    PromptCacheSettings,
    Ttl,
    merged,
    min_cacheable_tokens,
    plan,
)
from claude_proxy.tenancy import Tenant, TenantDirectory
from claude_proxy.tenancy.overrides import PerTenant

__all__ = ["PROMPT_CACHE", "PROMPT_CACHE_HEADER", "PromptCache", "Report"]

PROMPT_CACHE_HEADER = "x-proxy-prompt-cache"
_CHOICES: dict[str, Ttl | None] = {"off": None, "5m": "5m", "1h": "1h"}


@dataclass(frozen=True, slots=True)
class Report:
    """What the stage did to one request (the response header's value)."""

    plan: Plan | None  # None: off for this request

    @property
    def header(self) -> str:
        plan = self.plan
        if plan is None:
            return "off"
        if not plan.added:
            return f"added=0; reason={plan.outcome}"
        at = ",".join(dict.fromkeys(point.where for point in plan.added))
        ttls = ",".join(dict.fromkeys(point.ttl for point in plan.added))
        return f"added={len(plan.added)}; at={at}; ttl={ttls}"


PROMPT_CACHE: CallKey[Report] = CallKey("prompt_cache")


class PromptCache:
    name = "prompt_cache"
    routes = frozenset({Route.MESSAGES})

    def __init__(
        self, settings: PromptCacheSettings, tenants: TenantDirectory, metrics: Metrics
    ) -> None:
        self._metrics = metrics
        self._tenants = _per_tenant(settings, tenants)

    @staticmethod
    def wanted(settings: PromptCacheSettings, tenants: TenantDirectory) -> bool:
        """Whether it is on for the gateway or any tenant (else it stays out of the chain)."""
        return any(each.enabled for each in _per_tenant(settings, tenants))

    def _settings(self, tenant: Tenant | None) -> PromptCacheSettings:
        return self._tenants.of(tenant)

    async def on_request(self, call: Call) -> None:
        settings = self._settings(call.tenant)
        asked = call.headers.get(PROMPT_CACHE_HEADER)
        if asked is not None and asked.strip().lower() not in _CHOICES:
            raise InvalidRequest(f"{PROMPT_CACHE_HEADER}: must be off, 5m or 1h")
        ttl = settings.ttl if asked is None else _CHOICES[asked.strip().lower()]
        if not settings.enabled or ttl is None:
            call.state[PROMPT_CACHE] = Report(None)
            self._metrics.prompt_cache("off", ())
            return
        result = plan(
            call.body,
            ttl=ttl,
            min_tokens=min_cacheable_tokens(call.model, settings.min_tokens),
        )
        call.state[PROMPT_CACHE] = Report(result)
        if result.body is not None:
            call.set_body(result.body)
        self._metrics.prompt_cache(result.outcome, [point.where for point in result.added])


def _per_tenant(
    settings: PromptCacheSettings, tenants: TenantDirectory
) -> PerTenant[PromptCacheSettings]:
    return PerTenant(tenants, lambda own: own.prompt_caching, lambda own: merged(settings, own))
