"""The Call: one constructor, and the body that goes upstream is the body as stages left it."""

from __future__ import annotations

import orjson
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from claude_proxy.errors import InvalidRequest
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.tenancy import DEFAULT_TENANT

HEADERS = CIMultiDictProxy(CIMultiDict({"x-api-key": "k"}))
# Unusual but valid JSON: the spacing, key order and unknown field must reach the API as is.
RAW = (
    b'{ "stream" : false, "model":"claude-haiku-4-5","max_tokens":5,"x_new_field":[1, 2],\n'
    b'"messages":[{"role":"user","content":"hi"}] }'
)


def call(**fields: object) -> Call:
    return Call.create("req_1", Route.MESSAGES, path="/v1/messages", headers=HEADERS, **fields)  # type: ignore[arg-type]


def test_an_unchanged_body_goes_upstream_byte_for_byte() -> None:
    c = call(raw_body=RAW)
    assert c.body["x_new_field"] == [1, 2]
    assert c.upstream_body is RAW
    assert not c.body_changed


def test_a_changed_body_is_encoded_once_and_sent_as_changed() -> None:
    c = call(raw_body=RAW)
    c.set_body({**c.body, "max_tokens": 7})
    first = c.upstream_body
    assert first is not None and orjson.loads(first)["max_tokens"] == 7
    assert orjson.loads(first)["x_new_field"] == [1, 2]
    assert c.upstream_body is first  # not encoded again


def test_a_body_given_as_an_object_is_encoded_for_the_upstream() -> None:
    c = call(body={"model": "m", "stream": True, "messages": []})
    assert c.stream
    assert orjson.loads(c.upstream_body or b"") == {"model": "m", "stream": True, "messages": []}


def test_no_body_until_the_body_stage_reads_it() -> None:
    c = call()
    assert not c.has_body and c.upstream_body is None and c.body == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{", "not valid JSON"),
        (b"[1]", "must be a JSON object"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b'{"stream": "yes"}', "stream: Input should be a valid boolean"),
    ],
)
def test_bad_bodies_are_refused_clearly(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        call(raw_body=raw)


def test_a_stream_flag_set_by_a_stage_is_validated_too() -> None:
    c = call(raw_body=RAW)
    with pytest.raises(InvalidRequest):
        c.set_body({**c.body, "stream": 1})


def test_a_subcall_keeps_the_tenant_and_credentials_but_not_the_accounting() -> None:
    parent = call(raw_body=RAW)
    parent.tenant = DEFAULT_TENANT
    parent.queue_wait = 1.5
    first = parent.subcall({"model": "m", "messages": []})
    second = parent.subcall({"model": "m", "messages": []})
    assert first.tenant is DEFAULT_TENANT and first.headers is parent.headers
    assert (first.request_id, second.request_id) == ("req_1.1", "req_1.2")
    assert first.queue_wait is None and first.attempts is None and first.usage is None
    assert first.route is Route.MESSAGES


@pytest.mark.parametrize(
    "raw",
    [
        b'{"model": "claude-haiku-4-5", "max_tokens": 5, "model": "claude-opus-4-8"}',
        b'{"model": "m", "stream": false, "messages": [], "stream": true}',
        b'{"model": "m", "tools": [{"name": "t", "input_schema": {"a": 1, "a": 2}}],'
        b' "messages": [{"role": "user", "content": "say \\"model\\""}], "max_tokens": 1,'
        b' "max_tokens": 9}',
    ],
)
def test_a_key_sent_twice_is_refused(raw: bytes) -> None:
    # Authorised on its last value here, perhaps run on its first upstream.
    with pytest.raises(InvalidRequest, match="twice"):
        call(raw_body=raw)


def test_a_field_named_like_a_top_level_key_deeper_down_is_fine() -> None:
    raw = (
        b'{"model": "m", "max_tokens": 5, "tools": [{"name": "pick", "input_schema":'
        b' {"properties": {"model": {"type": "string"}}}}], "messages": []}'
    )
    assert call(raw_body=raw).upstream_body is raw
