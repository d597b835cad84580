"""Which requests the cache may answer, and what makes two requests the same one."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from multidict import CIMultiDict

from claude_proxy.response_cache import ResponseCachePolicy
from claude_proxy.response_cache.rules import bypass_reason, cache_key, samples
from tests.helpers import message_body

STRICT = ResponseCachePolicy(enabled=True)
LENIENT = ResponseCachePolicy(enabled=True, allow_sampling=True)


def headers(**values: str) -> CIMultiDict[str]:
    return CIMultiDict({"anthropic-version": "2023-06-01", **values})


@pytest.mark.parametrize(
    ("fields", "sampled"),
    [
        ({}, True),  # the API's default temperature is 1.0
        ({"temperature": 1.0}, True),
        ({"temperature": 0.3}, True),
        ({"temperature": 0}, False),
        ({"temperature": 0.0}, False),
        ({"temperature": 0, "top_p": 0.9}, False),  # top_p draws from one token at 0
        ({"temperature": False}, True),  # not a number: the API refuses it anyway
        ({"top_k": 1}, True),  # only temperature is read
    ],
)
def test_only_temperature_zero_is_deterministic(fields: dict[str, Any], sampled: bool) -> None:
    body = message_body(**fields)
    assert samples(body) is sampled
    assert bypass_reason(body, headers(), STRICT) == ("sampling" if sampled else None)
    assert bypass_reason(body, headers(), LENIENT) is None


@pytest.mark.parametrize(
    ("extra", "fields", "reason"),
    [
        ({"x-session-id": "s1"}, {"temperature": 0}, "session"),
        ({"cache-control": "no-store"}, {"temperature": 0}, "no-store"),
        ({"cache-control": "max-age=0, No-Cache"}, {"temperature": 0}, "no-cache"),
        ({}, {"temperature": 0, "max_tokens": 0}, "warm-up"),
        ({"x-session-id": "s1"}, {}, "session"),  # the first reason that applies
    ],
)
def test_bypass_reasons(extra: dict[str, str], fields: dict[str, Any], reason: str) -> None:
    assert bypass_reason(message_body(**fields), headers(**extra), STRICT) == reason


def key(
    body: dict[str, Any] | None = None,
    *,
    tenant: str = "acme",
    path: str = "/v1/messages",
    stream: bool = False,
    credential: bool = False,
    max_continuations: int = 0,
    **extra: str,
) -> str:
    return cache_key(
        tenant=tenant,
        path=path,
        headers=headers(**extra),
        body=orjson.dumps(body if body is not None else message_body()),
        stream=stream,
        max_continuations=max_continuations,
        credential=credential,
    )


def test_the_key_ignores_the_spelling_of_what_does_not_change_the_answer() -> None:
    body = message_body(temperature=0)
    betas = {"anthropic-beta": "a-2025, b-2026"}
    assert key(body, **betas) == key(body, **{"anthropic-beta": "b-2026,a-2025,a-2025"})
    assert key(body).startswith("acme:")


@pytest.mark.parametrize(
    "changed",
    [
        {"tenant": "other"},
        {"path": "/v1/messages?beta=true"},
        {"stream": True},
        {"max_continuations": 2},
        {"anthropic-version": "2026-10-21"},
        {"anthropic-beta": "context-1m-2025-08-07"},
        {"body": message_body("Hello there!")},
        {"body": message_body(temperature=0, system="Be brief.")},
        {"body": message_body(model="claude-sonnet-4-6")},
    ],
)
def test_whatever_changes_the_answer_changes_the_key(changed: dict[str, Any]) -> None:
    base = message_body(temperature=0)
    fields = {"body": base, **changed}
    assert key(**fields) != key(base)


def schema_body(properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties}
    return message_body(
        "Extract the person.",
        temperature=0,
        output_config={"format": {"type": "json_schema", "schema": schema}},
    )


def test_bodies_that_differ_only_in_key_order_have_different_keys() -> None:
    """Key order reaches the model: a schema's properties are answered in their order."""
    name, age = {"name": {"type": "string"}}, {"age": {"type": "integer"}}
    assert key(schema_body({**name, **age})) != key(schema_body({**age, **name}))
    body = message_body(temperature=0)
    assert key(body) != key(dict(reversed(list(body.items()))))
    assert key(body) == key(dict(body))


def test_a_forwarded_credential_is_part_of_the_key_and_only_then() -> None:
    mine = key(credential=True, **{"x-api-key": "sk-mine"})
    assert mine != key(credential=True, **{"x-api-key": "sk-theirs"})
    assert mine == key(credential=True, **{"x-api-key": "sk-mine"})
    assert "sk-mine" not in mine
    # With the gateway's own upstream key, the tenant alone says whose answer it is.
    assert key(**{"x-api-key": "sk-mine"}) == key(**{"x-api-key": "sk-theirs"})
