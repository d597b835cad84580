"""The default chains: which stages each route runs, in which order; off features are absent."""

from __future__ import annotations

from collections.abc import Sequence

from claude_proxy.config import ContinuationSettings, Settings, UpstreamSettings
from claude_proxy.observability import NullMetrics
from claude_proxy.pii import PiiSettings
from claude_proxy.pipeline.build import build_pipeline
from claude_proxy.pipeline.call import Route
from claude_proxy.pipeline.chain import Pipeline
from claude_proxy.pipeline.stage import Stage
from claude_proxy.pipeline.stages.response_cache import ResponseCacheStage
from claude_proxy.prompt_cache import PromptCacheSettings
from claude_proxy.response_cache import ResponseCacheSettings
from claude_proxy.response_cache.memory import MemoryResponseCache
from claude_proxy.sessions import open_store
from claude_proxy.tenancy import TenantDirectory
from tests.pipeline.test_chain import Tag


def pipeline(
    settings: Settings, *, loopback_only: bool = False, extra: Sequence[Stage] = ()
) -> Pipeline:
    return build_pipeline(
        settings,
        tenants=TenantDirectory.from_settings(settings.tenants),
        metrics=NullMetrics(),
        request_log=None,
        loopback_only=loopback_only,
        extra=extra,
    )


def test_the_default_chains() -> None:
    chains = pipeline(Settings())
    assert chains.chain(Route.MESSAGES).names == [
        "record",
        "authenticate",
        "body",
        "model_access",
        "continuations",
        "prompt_cache",
    ]
    assert chains.chain(Route.COUNT_TOKENS).names == [
        "record",
        "authenticate",
        "body",
        "model_access",
    ]
    # model_access: a model-limited tenant's message batches.
    assert chains.chain(Route.RELAY).names == ["record", "authenticate", "model_access"]
    assert chains.chain(Route.RESUME).names == ["record", "authenticate"]
    assert chains.chain(Route.WEBSOCKET).names == []


def test_an_open_gateway_on_a_public_address_checks_the_peer_first() -> None:
    chains = pipeline(Settings(), loopback_only=True)
    assert chains.chain(Route.MESSAGES).names[:3] == ["record", "loopback", "authenticate"]
    assert chains.chain(Route.WEBSOCKET).names == ["loopback"]


def test_a_feature_that_is_off_is_not_in_the_chain() -> None:
    off = Settings(continuations=ContinuationSettings(max_per_request=0))
    assert "continuations" not in pipeline(off).chain(Route.MESSAGES).names


def test_redaction_is_in_the_chain_only_when_a_policy_is_on() -> None:
    on = Settings(pii=PiiSettings(mode="mask"))
    assert pipeline(on).chain(Route.MESSAGES).names[-2:] == ["redaction", "prompt_cache"]
    assert "redaction" in pipeline(on).chain(Route.COUNT_TOKENS).names
    chain = pipeline(on).chain(Route.MESSAGES)
    assert [stage.name for stage in chain.message] == ["redaction"]
    assert [stage.name for stage in chain.events] == ["redaction"]
    one_tenant = Settings(
        upstreams=[UpstreamSettings(api_key="sk-upstream")],
        tenants=[
            {"name": "a", "keys": ["key-a"], "pii": {"mode": "pseudonymize"}},
            {"name": "b", "keys": ["key-b"]},
        ],
    )
    assert "redaction" in pipeline(one_tenant).chain(Route.MESSAGES).names
    only_off = Settings(pii=PiiSettings(mode="off", entities=["EMAIL"]))
    assert "redaction" not in pipeline(only_off).chain(Route.MESSAGES).names


async def test_the_response_cache_is_last_so_it_sees_the_upstreams_answer_first() -> None:
    """Last after an embedding application's stages too: its key must be the body they
    leave, and their answer hooks must run once on a hit, after it."""
    settings = Settings(
        pii=PiiSettings(mode="pseudonymize"),
        sessions="memory://",
        response_cache=ResponseCacheSettings(enabled=True),
    )
    store = MemoryResponseCache(settings.response_cache)
    assert settings.sessions is not None
    chains = build_pipeline(
        settings,
        tenants=TenantDirectory.from_settings(settings.tenants),
        metrics=NullMetrics(),
        request_log=None,
        loopback_only=False,
        sessions=await open_store("memory://", settings.sessions),
        response_cache=store,
        extra=[Tag("extra")],
    )
    chain = chains.chain(Route.MESSAGES)
    assert chain.names[-5:] == [
        "redaction",
        "session_save",
        "prompt_cache",
        "extra",
        "response_cache",
    ]
    assert chain.message[0].name == chain.events[0].name == "response_cache"
    assert [stage.name for stage in chain.message][:2] == ["response_cache", "extra"]
    # Without the response cache, the extra stages are last.
    assert pipeline(Settings(), extra=[Tag("extra")]).chain(Route.MESSAGES).names[-1] == "extra"
    assert "response_cache" not in chains.chain(Route.COUNT_TOKENS).names
    assert ResponseCacheStage.wanted(settings.response_cache, TenantDirectory.from_settings([]))
    assert not ResponseCacheStage.wanted(ResponseCacheSettings(), TenantDirectory.from_settings([]))


def test_prompt_caching_is_in_the_chain_unless_off_everywhere() -> None:
    off = PromptCacheSettings(enabled=False)
    assert "prompt_cache" not in pipeline(Settings(prompt_caching=off)).chain(Route.MESSAGES).names
    one_tenant = Settings(
        upstreams=[UpstreamSettings(api_key="sk-upstream")],
        prompt_caching=off,
        tenants=[
            {"name": "a", "keys": ["key-a"], "prompt_caching": {"enabled": True}},
            {"name": "b", "keys": ["key-b"]},
        ],
    )
    assert pipeline(one_tenant).chain(Route.MESSAGES).names[-1] == "prompt_cache"
    # count_tokens counts what the client sent; batches are relayed as they are.
    for route in (Route.COUNT_TOKENS, Route.RELAY):
        assert "prompt_cache" not in pipeline(Settings()).chain(route).names
