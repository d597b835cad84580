from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from claude_proxy.upstream.headers import downstream_headers, upstream_headers


def proxy(*pairs: tuple[str, str]) -> CIMultiDictProxy[str]:
    return CIMultiDictProxy(CIMultiDict(pairs))


def test_client_credential_is_replaced_by_the_gateway_key() -> None:
    out = upstream_headers(
        proxy(
            ("Authorization", "Bearer client"),
            ("X-Api-Key", "client"),
            ("Anthropic-Version", "2026-10-21"),
        ),
        "sk-gateway",
    )
    assert out["x-api-key"] == "sk-gateway"
    assert "authorization" not in out
    assert out["anthropic-version"] == "2026-10-21"


def test_without_a_gateway_key_the_client_credential_passes() -> None:
    out = upstream_headers(proxy(("Authorization", "Bearer client")), None)
    assert out["authorization"] == "Bearer client"


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    out = upstream_headers(
        proxy(
            ("Connection", "keep-alive, X-Private"),
            ("X-Private", "1"),
            ("Keep-Alive", "timeout=5"),
            ("Transfer-Encoding", "chunked"),
            ("Host", "gateway"),
            ("Content-Length", "10"),
            ("anthropic-beta", "a,b"),
            ("x-custom", "kept"),
        ),
        "k",
    )
    assert set(out) == {"anthropic-beta", "x-custom", "x-api-key"}
    assert out["anthropic-beta"] == "a,b"


def test_response_headers_keep_api_headers_and_drop_framing() -> None:
    out = downstream_headers(
        proxy(
            ("request-id", "req_1"),
            ("retry-after", "3"),
            ("anthropic-ratelimit-requests-remaining", "9"),
            ("Content-Length", "5"),
            ("Content-Encoding", "gzip"),
            ("Transfer-Encoding", "chunked"),
            ("Connection", "close"),
        )
    )
    assert dict(out) == {
        "request-id": "req_1",
        "retry-after": "3",
        "anthropic-ratelimit-requests-remaining": "9",
    }


def test_the_gateways_own_headers_stay_with_it() -> None:
    out = upstream_headers(
        proxy(("X-Proxy-Max-Continuations", "3"), ("x-proxy-anything", "1"), ("x-other", "2")),
        "sk-gateway",
    )
    assert "x-proxy-max-continuations" not in out
    assert "x-proxy-anything" not in out
    assert out["x-other"] == "2"
