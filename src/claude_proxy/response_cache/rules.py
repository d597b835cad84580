"""Which requests the response cache may answer, and the key an answer is kept under.

A request qualifies unless one of these holds (the reason is what the
``x-proxy-response-cache: bypass; reason=…`` header and the metrics say):

- ``session``: it has ``x-session-id``: the session stages must see every turn;
- ``no-store``: its ``cache-control`` says ``no-store``: not read, not stored;
- ``warm-up``: ``max_tokens`` is 0: it exists to warm the upstream's prompt cache;
- ``sampling``: it samples, and its tenant does not allow caching that. Deterministic
  means ``temperature`` is 0; absent is the API's default of 1.0, which samples. Models
  and API versions that refuse ``temperature`` (anthropic-version 2026-10-21, Opus 4.7+,
  Claude 5) therefore sample always, and are cached only with ``allow_sampling``;
- ``no-cache``: its ``cache-control`` says ``no-cache``: not read, but the fresh answer
  is stored for the next identical request.

The key is a SHA-256 over everything that changes the answer: the tenant, the path
(``?beta=true`` included), ``anthropic-version``, the set of ``anthropic-beta`` features,
the stream flag, the continuations asked for, the body's bytes exactly as they go
upstream (after redaction and every other stage), and, when the gateway forwards the
client's own credential (no upstream key configured), a digest of that credential: an
answer must never reach a client the upstream would have refused.

The body's bytes, not its parsed value with keys sorted: key order reaches the model
(a JSON schema's properties are answered in the order given), so two bodies that differ
only in order may get different answers, and byte-exact is also how the upstream's
prompt cache matches a prefix.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from multidict import MultiMapping

from claude_proxy.jsonbytes import to_json
from claude_proxy.response_cache.settings import ResponseCachePolicy

__all__ = ["bypass_reason", "cache_key", "samples"]

SESSION_HEADER = "x-session-id"


def samples(body: Mapping[str, Any]) -> bool:
    """Whether the upstream draws its answer at random: unless ``temperature`` is 0."""
    temperature = body.get("temperature")
    deterministic = (
        isinstance(temperature, int | float)
        and not isinstance(temperature, bool)
        and temperature == 0
    )
    return not deterministic


def bypass_reason(
    body: Mapping[str, Any], headers: MultiMapping[str], policy: ResponseCachePolicy
) -> str | None:
    """Why this request is not answered from the cache (None: it may be)."""
    if SESSION_HEADER in headers:
        return "session"
    directives = _cache_control(headers)
    if "no-store" in directives:
        return "no-store"
    if body.get("max_tokens") == 0:
        return "warm-up"
    if not policy.allow_sampling and samples(body):
        return "sampling"
    if "no-cache" in directives:
        return "no-cache"
    return None


def cache_key(
    *,
    tenant: str,
    path: str,
    headers: MultiMapping[str],
    body: bytes,
    stream: bool,
    max_continuations: int,
    credential: bool,
) -> str:
    """``{tenant}:{sha256}``; the digest covers the tenant too, so the prefix is only for
    reading (and deleting) a tenant's keys. ``body``: the bytes sent upstream."""
    betas = sorted(
        {
            token.strip()
            for value in headers.getall("anthropic-beta", ())
            for token in value.split(",")
            if token.strip()
        }
    )
    who = ""
    if credential:
        secret = headers.get("x-api-key") or headers.get("authorization") or ""
        who = hashlib.sha256(secret.encode()).hexdigest()
    digest = hashlib.sha256(
        to_json(
            [
                tenant,
                path,
                headers.get("anthropic-version", ""),
                betas,
                who,
                stream,
                max_continuations,
            ]
        )
    )
    # The array above ends where its JSON ends: no body can be read as part of it.
    digest.update(body)
    return f"{tenant}:{digest.hexdigest()}"


def _cache_control(headers: MultiMapping[str]) -> set[str]:
    return {
        token.strip().lower()
        for value in headers.getall("cache-control", ())
        for token in value.split(",")
    }
