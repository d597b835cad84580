"""The ``response_cache`` stage: an identical request answered with the answer already given.

For tenants with ``response_cache.enabled``, each ``/v1/messages`` request that qualifies
(``response_cache.rules``: not sampling unless allowed, no session, ...) is looked up by
its key. A hit becomes the call's ``prepared`` answer: the upstream-call service returns
it without admission or an upstream call, and everything after runs as for the
upstream's answer (message hooks, stream filters, the replay log, the client). A miss
goes upstream, and its answer is stored once it is whole: a 200 JSON Message, or a
stream up to its ``message_stop`` (continued past ``max_tokens`` included, when the
client asked for it), never an error, a refusal, or a stream cut or abandoned before its
end. Nor an answer the gateway put together after a break: a healed one (its heal was
given a budget from an estimate, so it may end shorter than the upstream's own answer)
or one the gateway ended itself at ``max_tokens``; it is right for this client, but
should not be served as the upstream's answer for the whole TTL.

Last in the chain (after an embedding application's stages too), so nearest the
upstream: the key is the body as it goes upstream (after redaction: two requests whose
values are masked alike share an entry), and the
answer stored is the upstream's, before any stage's answer hook. Pseudonyms are put
back per call by the redaction stage, on a hit as on a miss. The entry is stored before
the end of the answer is sent, so the next identical request finds it.

A stream is kept as the SSE bytes of its events and replayed as those events, byte for
byte; a JSON answer as its body. A JSON request never gets a stream's entry nor the
reverse: the stream flag is part of the key (a JSON answer rebuilt from events, or
events made up from JSON, would not be what the upstream sends).

Every request of such a tenant gets ``x-proxy-response-cache: hit``, ``miss`` or
``bypass; reason=<why>``; ``unavailable`` is a store that failed or is known to be down
(the request then goes upstream: the cache fails open). A store that fails costs the
client nothing; failures are counted (``stores_total{result="failed"}``) and logged by the
backend (a Redis that refuses writes as a count at most once a minute).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

from claude_proxy.jsonbytes import to_json
from claude_proxy.observability import Metrics
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.pipeline.stage import EventFilter
from claude_proxy.response_cache import (
    Entry,
    ResponseCache,
    ResponseCacheSettings,
    merged,
)
from claude_proxy.response_cache.rules import bypass_reason, cache_key
from claude_proxy.response_cache.settings import ResponseCachePolicy
from claude_proxy.state import StateUnavailable
from claude_proxy.streaming.sse import Event
from claude_proxy.tenancy import Tenant, TenantDirectory
from claude_proxy.tenancy.overrides import PerTenant
from claude_proxy.upstream.forwarder import UpstreamReply

__all__ = ["RESPONSE_CACHE", "RESPONSE_CACHE_HEADER", "ResponseCacheStage"]

RESPONSE_CACHE_HEADER = "x-proxy-response-cache"
# The header's value for this call: hit, miss, or bypass; reason=…
RESPONSE_CACHE: CallKey[str] = CallKey("response_cache")
_SSE = "text/event-stream; charset=utf-8"


@dataclass(slots=True)
class _Pending:
    """A call whose whole answer is to be stored under ``key``."""

    key: str
    ttl: float
    body: bytes | None = None  # a JSON answer, once seen whole


_PENDING: CallKey[_Pending] = CallKey("response_cache_pending")


class ResponseCacheStage:
    name = "response_cache"
    routes = frozenset({Route.MESSAGES})

    def __init__(
        self,
        cache: ResponseCache,
        settings: ResponseCacheSettings,
        tenants: TenantDirectory,
        metrics: Metrics,
        *,
        credential_in_key: bool,
    ) -> None:
        """``credential_in_key``: the client's credential goes upstream (some deployment
        has no key of its own), so answers are kept per credential too."""
        self._cache = cache
        self._metrics = metrics
        self._max_entry_bytes = settings.max_entry_bytes
        self._credential = credential_in_key
        self._policies = _per_tenant(settings, tenants)

    @staticmethod
    def wanted(settings: ResponseCacheSettings, tenants: TenantDirectory) -> bool:
        """Whether any tenant has the cache (else the stage and its store do not exist)."""
        return any(policy.enabled for policy in _per_tenant(settings, tenants))

    async def on_request(self, call: Call) -> None:
        tenant = call.tenant
        assert tenant is not None, "the authenticate stage runs first"
        policy = self._policies.of(tenant)
        if not policy.enabled:
            return
        reason = bypass_reason(call.body, call.headers, policy)
        if reason is not None and reason != "no-cache":
            self._bypass(call, tenant, reason)
            return
        key = cache_key(
            tenant=tenant.name,
            path=call.path,
            headers=call.headers,
            # Last stage: these are the bytes the upstream gets (encoded once, kept).
            body=call.upstream_body or b"",
            stream=call.stream,
            max_continuations=call.max_continuations,
            credential=self._credential,
        )
        if reason is not None:
            self._bypass(call, tenant, reason)  # no-cache: not read, but stored afresh
        else:
            try:
                entry = await self._cache.get(key)
            except StateUnavailable:
                self._bypass(call, tenant, "unavailable")
                return
            self._count_bytes()
            if entry is not None and entry.stream == call.stream:
                call.prepared = _reply(entry)
                call.state[RESPONSE_CACHE] = "hit"
                self._metrics.response_cache_lookup(tenant.name, "hit")
                return
            call.state[RESPONSE_CACHE] = "miss"
            self._metrics.response_cache_lookup(tenant.name, "miss")
        call.state[_PENDING] = _Pending(key, policy.ttl_seconds)

    def _bypass(self, call: Call, tenant: Tenant, reason: str) -> None:
        call.state[RESPONSE_CACHE] = f"bypass; reason={reason}"
        self._metrics.response_cache_lookup(tenant.name, "bypass", reason)

    # -- a JSON answer ----------------------------------------------------------------

    def wants_message(self, call: Call) -> bool:
        return _PENDING in call.state

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        pending = call.state.get(_PENDING)
        if pending is not None and _complete(message.get("stop_reason")):
            # As the client will get it when no other stage changes it: parsed and
            # encoded once, so a hit's bytes are a miss's.
            pending.body = to_json(message)
        return message

    async def settle(self, call: Call) -> None:
        pending = call.state.get(_PENDING)
        if pending is not None and pending.body is not None and not _mended(call):
            await self.store(pending, Entry(False, pending.body))

    # -- a stream ---------------------------------------------------------------------

    def event_filter(self, call: Call) -> EventFilter | None:
        pending = call.state.get(_PENDING)
        return None if pending is None else _Capture(self, call, pending, self._max_entry_bytes)

    async def store(self, pending: _Pending, entry: Entry) -> None:
        """Keep a whole answer; a store that fails costs the client nothing."""
        if entry.size > self._max_entry_bytes:
            self.too_large()
            return
        try:
            stored = await self._cache.put(pending.key, entry, pending.ttl)
        except StateUnavailable:  # the backend logs it (an outage once, refusals as a count)
            self._metrics.response_cache_store("failed")
            return
        self._metrics.response_cache_store("stored" if stored else "too_large")
        self._count_bytes()

    def too_large(self) -> None:
        self._metrics.response_cache_store("too_large")

    def _count_bytes(self) -> None:
        held = self._cache.bytes_held
        if held is not None:
            self._metrics.response_cache_bytes(held)


class _Capture:
    """One stream's events as the upstream sent them, kept until its ``message_stop``."""

    __slots__ = (
        "_call",
        "_dropped",
        "_max_bytes",
        "_parts",
        "_pending",
        "_size",
        "_stage",
        "_whole",
    )

    def __init__(
        self, stage: ResponseCacheStage, call: Call, pending: _Pending, max_bytes: int
    ) -> None:
        self._stage = stage
        self._call = call
        self._pending = pending
        self._max_bytes = max_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._whole = False
        self._dropped = False

    def on_events(self, events: list[Event]) -> list[Event]:
        if self._dropped:
            return events
        for event in events:
            name = event.name
            if name == "error" or (
                name == "message_delta"
                and not _complete(event.json().get("delta", {}).get("stop_reason"))
            ):
                self._drop()
                break
            self._parts.append(event.raw)
            self._size += len(event.raw)
            if name == "message_stop":
                self._whole = True
        if not self._dropped and self._size > self._max_bytes:
            self._drop()  # held no longer than it could be kept
            self._stage.too_large()
        return events

    def flush(self) -> list[Event]:
        """The answer ended early (abandoned, failed): nothing is stored."""
        self._drop()
        return []

    async def settle(self) -> None:
        if self._whole and not self._dropped:
            body = b"".join(self._parts)
            self._drop()
            if not _mended(self._call):
                await self._stage.store(self._pending, Entry(True, body))

    def _drop(self) -> None:
        self._dropped = True
        self._parts = []


def _mended(call: Call) -> bool:
    """Whether the gateway healed the answer or ended it itself after a break: whole for
    this client, but perhaps not what the upstream would have said (see the docstring)."""
    log = call.attempts
    return log is not None and (log.heals > 0 or log.ended_by_gateway)


def _complete(stop_reason: object) -> bool:
    """A stop reason of a whole answer worth repeating (not a refusal)."""
    return isinstance(stop_reason, str) and stop_reason != "refusal"


def _reply(entry: Entry) -> UpstreamReply:
    content_type = _SSE if entry.stream else "application/json"
    return UpstreamReply(200, CIMultiDict({"content-type": content_type}), entry.body)


def _per_tenant(
    settings: ResponseCacheSettings, tenants: TenantDirectory
) -> PerTenant[ResponseCachePolicy]:
    return PerTenant(tenants, lambda own: own.response_cache, lambda own: merged(settings, own))
