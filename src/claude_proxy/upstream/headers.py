"""Which headers cross the gateway, in each direction.

Requests: the client's headers go upstream except hop-by-hop ones, the ones the
HTTP client sets itself, the gateway's own (``x-proxy-*``), and the client's
credential, which is replaced by the deployment's key (when one is configured).
``anthropic-version`` and ``anthropic-beta`` pass through untouched, as does anything
unknown.

Responses: upstream headers come back except hop-by-hop ones and the framing
headers the gateway sets itself (it may re-frame or decompress the body).

Relayed routes (files, batches, anything the gateway does not parse) keep the body
exactly as sent, encoding and length included: ``relay=True`` forwards the client's
Accept-Encoding and Content-Length up, and the upstream's Content-Encoding and
Content-Length down.
"""

from __future__ import annotations

from collections.abc import Iterable

from multidict import CIMultiDict, CIMultiDictProxy, MultiMapping

__all__ = ["AUTH_HEADERS", "GATEWAY_PREFIX", "downstream_headers", "upstream_headers"]

# RFC 9110 section 7.6.1, plus headers the HTTP client must compute itself.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)
AUTH_HEADERS = frozenset({"x-api-key", "authorization"})
# The gateway's own request headers (x-proxy-max-continuations, ...) are for it alone.
GATEWAY_PREFIX = "x-proxy-"
_NOT_FORWARDED_UP = _HOP_BY_HOP | {"host", "content-length", "accept-encoding", "expect"}
_NOT_FORWARDED_DOWN = _HOP_BY_HOP | {"content-length", "content-encoding", "date", "server"}
_RELAY_NOT_UP = _HOP_BY_HOP | {"host", "expect"}
_RELAY_NOT_DOWN = _HOP_BY_HOP | {"date", "server"}

# [relay][keyed]: what is dropped on the way up.
_DROP_UP = {
    (False, False): _NOT_FORWARDED_UP,
    (False, True): _NOT_FORWARDED_UP | AUTH_HEADERS,
    (True, False): _RELAY_NOT_UP,
    (True, True): _RELAY_NOT_UP | AUTH_HEADERS,
}


def upstream_headers(
    client: MultiMapping[str], api_key: str | None, *, relay: bool = False
) -> CIMultiDict[str]:
    """Headers for the upstream request; the client's key is swapped for ``api_key``."""
    drop = _DROP_UP[relay, api_key is not None]
    named = client.getall("connection", None)
    if named:
        drop = drop | _connection_tokens(named)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in client.items():
        lowered = name.lower()
        if lowered not in drop and not lowered.startswith(GATEWAY_PREFIX):
            headers.add(name, value)
    if api_key is not None:
        headers["x-api-key"] = api_key
    return headers


def downstream_headers(upstream: CIMultiDictProxy[str], *, relay: bool = False) -> CIMultiDict[str]:
    """Headers for the client's response, taken from the upstream response."""
    drop = _RELAY_NOT_DOWN if relay else _NOT_FORWARDED_DOWN
    named = upstream.getall("connection", None)
    if named:
        drop = drop | _connection_tokens(named)
    headers: CIMultiDict[str] = CIMultiDict()
    for name, value in upstream.items():
        if name.lower() not in drop:
            headers.add(name, value)
    return headers


def _connection_tokens(values: Iterable[str]) -> frozenset[str]:
    # Headers named in Connection are hop-by-hop for this connection only.
    return frozenset(
        token.strip().lower() for value in values for token in value.split(",") if token.strip()
    )
