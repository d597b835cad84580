"""The stage list: the whole request path, in order, built from settings.

Adding a stage is one module in ``pipeline/stages/`` and one line here; a feature that
is off is not in the list, and costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from claude_proxy.config import Settings
from claude_proxy.observability import Metrics
from claude_proxy.pipeline.chain import Pipeline
from claude_proxy.pipeline.service import UpstreamCalls
from claude_proxy.pipeline.stage import Stage
from claude_proxy.pipeline.stages.authenticate import Authenticate
from claude_proxy.pipeline.stages.body import ReadBody
from claude_proxy.pipeline.stages.continuations import Continuations
from claude_proxy.pipeline.stages.loopback import LoopbackOnly
from claude_proxy.pipeline.stages.model_access import ModelAccess
from claude_proxy.pipeline.stages.policies import ApplyPolicies
from claude_proxy.pipeline.stages.prompt_cache import PromptCache
from claude_proxy.pipeline.stages.record import Record
from claude_proxy.pipeline.stages.redaction import Redact
from claude_proxy.pipeline.stages.response_cache import ResponseCacheStage
from claude_proxy.pipeline.stages.sessions import SessionLoad, SessionSave
from claude_proxy.response_cache import ResponseCache
from claude_proxy.sessions import SessionStore
from claude_proxy.tenancy import TenantDirectory

__all__ = ["build_pipeline"]


def build_pipeline(
    settings: Settings,
    *,
    tenants: TenantDirectory,
    metrics: Metrics,
    request_log: Any | None,
    loopback_only: bool,
    sessions: SessionStore | None = None,
    calls: UpstreamCalls | None = None,
    response_cache: ResponseCache | None = None,
    extra: Sequence[Stage] = (),
) -> Pipeline:
    """The gateway's stages in order; ``extra`` ones (an embedding application's) run
    after the gateway's own, and before the response cache, which is always last.

    ``response_cache``: the store, when some tenant has the response cache."""
    stages: list[Stage] = [Record(metrics, request_log, open_access=tenants.is_open)]
    if loopback_only:
        stages.append(LoopbackOnly())
    stages.append(Authenticate(tenants))
    stages.append(ReadBody())
    stages.append(ModelAccess(tenants))
    if settings.continuations.max_per_request > 0:
        stages.append(Continuations(settings.continuations.max_per_request))
    if sessions is not None and settings.sessions is not None:
        stages.append(SessionLoad(sessions, settings.sessions, calls))
    if settings.policies:
        stages.append(ApplyPolicies(settings.policies, metrics))
    if Redact.wanted(settings.pii, tenants):
        stages.append(Redact(settings.pii, tenants, metrics))
    if sessions is not None:
        # After redaction: it stores the answer before pseudonyms are put back.
        stages.append(SessionSave())
    if PromptCache.wanted(settings.prompt_caching, tenants):
        # After redaction: the breakpoints go on the content that is sent.
        stages.append(PromptCache(settings.prompt_caching, tenants, metrics))
    # Features plug in here, in this order: session load, generation policy, redaction,
    # prompt-cache breakpoints, an embedding application's stages, response-cache lookup.
    stages.extend(extra)
    if response_cache is not None:
        # Last, after the extra stages too: its key is the body as sent (whoever changed
        # it), and it sees the upstream's answer first, so a hit passes every other
        # stage's answer hook once, as the upstream's answer would.
        stages.append(
            ResponseCacheStage(
                response_cache,
                settings.response_cache,
                tenants,
                metrics,
                credential_in_key=any(upstream.api_key is None for upstream in settings.upstreams),
            )
        )
    return Pipeline(stages)
