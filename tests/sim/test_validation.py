"""Auth, versions and request validation: 400s name the field, in the API's wording."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import pytest

from claude_proxy.sim.validation import PREFILL_REFUSED, THINKING_TOOL_LOOP

from .conftest import MODEL, NEW_MODEL, NEW_VERSION, OLD_VERSION, Sim, StartSim, body

URL = "/v1/messages"


async def _post(
    sim: Sim,
    http: aiohttp.ClientSession,
    payload: Any,
    hdrs: dict[str, str] | None = None,
    path: str = URL,
) -> tuple[int, dict[str, Any]]:
    sent = hdrs if hdrs is not None else {"x-api-key": "k", "anthropic-version": OLD_VERSION}
    kwargs: dict[str, Any] = {"data": payload} if isinstance(payload, bytes) else {"json": payload}
    async with http.post(sim.url + path, headers=sent, **kwargs) as resp:
        assert resp.headers["request-id"].startswith("req_")
        return resp.status, await resp.json()


async def test_missing_key_is_401(sim: Sim, http: aiohttp.ClientSession) -> None:
    status, data = await _post(sim, http, body(), {"anthropic-version": OLD_VERSION})
    assert status == 401
    assert data["error"]["type"] == "authentication_error"


@pytest.mark.parametrize("style", ["x-api-key", "bearer"])
async def test_configured_key_both_styles(start_sim: StartSim, style: str) -> None:
    sim = await start_sim(api_key="sekrit")

    def auth(key: str) -> dict[str, str]:
        if style == "bearer":
            return {"authorization": f"Bearer {key}", "anthropic-version": OLD_VERSION}
        return {"x-api-key": key, "anthropic-version": OLD_VERSION}

    async with aiohttp.ClientSession() as http:
        status, data = await _post(sim, http, body(), auth("wrong"))
        assert status == 401
        assert data["error"]["type"] == "authentication_error"
        status, _ = await _post(sim, http, body(), auth("sekrit"))
        assert status == 200


async def test_sdk_bearer_and_wrong_key(start_sim: StartSim) -> None:
    sim = await start_sim(api_key="sekrit")
    async with sim.client(api_key="sekrit") as good:
        message = await good.messages.create(**body())
        assert message.content
    async with sim.client(api_key="nope") as bad:
        with pytest.raises(anthropic.AuthenticationError):
            await bad.messages.create(**body())


async def test_missing_version_is_400(sim: Sim, http: aiohttp.ClientSession) -> None:
    status, data = await _post(sim, http, body(), {"x-api-key": "k"})
    assert status == 400
    assert "anthropic-version" in data["error"]["message"]


async def test_any_version_string_accepted(sim: Sim, http: aiohttp.ClientSession) -> None:
    for version in (OLD_VERSION, NEW_VERSION, "2025-01-01"):
        status, _ = await _post(
            sim,
            http,
            body(),
            {
                "x-api-key": "k",
                "anthropic-version": version,
                "anthropic-beta": "made-up-beta-2099-01-01",
            },
        )
        assert status == 200


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"model": MODEL, "messages": [{"role": "user", "content": "x"}]},
            "max_tokens: Field required",
        ),
        ({"model": MODEL, "max_tokens": 5}, "messages: Field required"),
        (
            {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
            "model: Field required",
        ),
        (body(foo=1), "foo: Extra inputs are not permitted"),
        (
            {
                **body(),
                "messages": [{"role": "user", "content": "a"}, {"role": "system", "content": "b"}],
            },
            "messages.1.role: Input should be 'user' or 'assistant'",
        ),
        ({**body(), "messages": []}, "messages: List should have at least 1 item"),
        (body(max_tokens="many"), "max_tokens: Input should be a valid integer"),
        (body(max_tokens=0), "max_tokens: Input should be greater than or equal to 1"),
        (body(max_tokens=64001), "max_tokens: 64001 > 64000"),
        (body(temperature=1.5), "temperature: Input should be less than or equal to 1"),
        (body(stop_sequences="x"), "stop_sequences: Input should be a valid list"),
        (body(stream="yes"), "stream: Input should be a valid boolean"),
        (
            body(metadata={"user_id": "u", "other": 1}),
            "metadata.other: Extra inputs are not permitted",
        ),
        (body(system=[{"type": "image", "source": {}}]), "system.0.type: Input should be 'text'"),
        (
            {**body(), "messages": [{"role": "user", "content": [{"type": "bogus"}]}]},
            "messages.0.content.0.type: Input tag 'bogus'",
        ),
        (
            body(messages=[{"role": "user", "content": [{"type": ["text"], "text": "x"}]}]),
            "messages.0.content.0.type: Input tag '['text']'",
        ),
        (
            {**body(), "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages.0.content.0.text.text: Field required",
        ),
        (
            body(thinking={"type": "enabled", "budget_tokens": 100}),
            "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024",
        ),
        (
            body(max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 2000}),
            "`max_tokens` must be greater than `thinking.budget_tokens`",
        ),
        (body(tools=[{"name": "a"}]), "tools.0.input_schema: Field required"),
        (body(tool_choice={"type": "maybe"}), "tool_choice.type"),
    ],
)
async def test_field_errors(
    sim: Sim, http: aiohttp.ClientSession, payload: dict[str, Any], message: str
) -> None:
    status, data = await _post(sim, http, payload)
    assert status == 400
    assert data["error"]["type"] == "invalid_request_error"
    assert message in data["error"]["message"]


async def test_invalid_json(sim: Sim, http: aiohttp.ClientSession) -> None:
    status, data = await _post(sim, http, b"{not json")
    assert status == 400
    assert "invalid JSON" in data["error"]["message"]
    status, data = await _post(sim, http, b"[1, 2]")
    assert status == 400
    assert "dictionary" in data["error"]["message"]


async def test_pass_through_fields_accepted(sim: Sim, http: aiohttp.ClientSession) -> None:
    payload = body(
        service_tier="auto",
        output_config={},
        container=None,
        inference_geo="us",
        speed="standard",
        diagnostics={},
        cache_control={"type": "ephemeral"},
        metadata={"user_id": "u1"},
        stop_sequences=["zzz"],
        top_k=5,
    )
    status, _ = await _post(sim, http, payload)
    assert status == 200


async def test_sampling_rejected_on_new_version(sim: Sim, http: aiohttp.ClientSession) -> None:
    hdrs = {"x-api-key": "k", "anthropic-version": NEW_VERSION}
    for field, value in (("temperature", 1.0), ("top_p", 0.9), ("top_k", 5)):
        status, data = await _post(sim, http, {**body(), field: value}, hdrs)
        assert status == 400, field
        assert f"`{field}`" in data["error"]["message"]
    status, _ = await _post(sim, http, body(temperature=1.0))  # old version: fine
    assert status == 200


async def test_sampling_rules_of_claude_4_models(sim: Sim, http: aiohttp.ClientSession) -> None:
    """Both sampling knobs at once, or sampling (and forced tools) beside thinking, are 400s."""
    thinking = {"type": "enabled", "budget_tokens": 1024}
    refused = [
        (body(temperature=0.5, top_p=0.9), "cannot both be specified"),
        (body(max_tokens=2048, thinking=thinking, temperature=0.5), "only be set to 1"),
        (body(max_tokens=2048, thinking=thinking, top_p=0.5), "`top_p` must be at least 0.95"),
        (body(max_tokens=2048, thinking=thinking, top_k=5), "`top_k` is not available"),
        (
            body(
                max_tokens=2048,
                thinking=thinking,
                tools=[{"name": "f", "input_schema": {"type": "object"}}],
                tool_choice={"type": "any"},
            ),
            "tool_choice forces tool use",
        ),
    ]
    for payload, message in refused:
        status, data = await _post(sim, http, payload)
        assert status == 400 and message in data["error"]["message"], payload
    fine = [
        body(temperature=0.5),
        body(top_p=0.9),
        body(max_tokens=2048, thinking=thinking, temperature=1),
        body(max_tokens=2048, thinking=thinking, top_p=0.95),
    ]
    for payload in fine:
        status, _ = await _post(sim, http, payload)
        assert status == 200, payload


@pytest.mark.parametrize(
    ("model", "effort", "message"),
    [
        (MODEL, "low", "This model does not support the effort parameter."),
        ("claude-opus-4-5", "max", "effort level 'max'. Supported levels: high, low, medium."),
        ("claude-opus-4-6", "xhigh", "effort level 'xhigh'"),
        ("claude-opus-4-7", "extreme", "output_config.effort: Input should be 'low'"),
        ("claude-opus-4-6", "max", None),
        ("claude-opus-4-7", "xhigh", None),
    ],
)
async def test_effort_levels_per_model(
    sim: Sim, http: aiohttp.ClientSession, model: str, effort: str, message: str | None
) -> None:
    status, data = await _post(sim, http, body(model=model, output_config={"effort": effort}))
    if message is None:
        assert status == 200
    else:
        assert status == 400 and message in data["error"]["message"]


async def test_sampling_deprecated_on_newest_models(sim: Sim, http: aiohttp.ClientSession) -> None:
    for model in ("claude-opus-4-7", "claude-sonnet-5"):
        status, data = await _post(sim, http, body(model=model, temperature=0.5))
        assert status == 400
        assert data["error"]["message"] == "`temperature` is deprecated for this model."


async def test_prefill_refused_on_new_models(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError) as info:
        await client.messages.create(
            model=NEW_MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Well"}],
        )
    assert info.value.body["error"]["message"] == PREFILL_REFUSED  # type: ignore[index]


async def test_prefill_trailing_whitespace_refused(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.BadRequestError, match="trailing whitespace"):
        await client.messages.create(
            model=MODEL,
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "Well "}],
        )


async def test_max_tokens_zero_only_on_new_version(sim: Sim, http: aiohttp.ClientSession) -> None:
    hdrs = {"x-api-key": "k", "anthropic-version": NEW_VERSION}
    status, data = await _post(sim, http, body(max_tokens=0), hdrs)
    assert status == 200
    assert data["content"] == []
    assert data["usage"]["output_tokens"] == 0


async def test_count_tokens_rejects_max_tokens(sim: Sim, http: aiohttp.ClientSession) -> None:
    status, data = await _post(sim, http, body(), path="/v1/messages/count_tokens")
    assert status == 400
    assert data["error"]["message"] == "max_tokens: Extra inputs are not permitted"


async def test_too_many_breakpoints(sim: Sim, http: aiohttp.ClientSession) -> None:
    marked = [
        {"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}}
        for i in range(5)
    ]
    payload = body()
    payload["messages"] = [{"role": "user", "content": marked}]
    status, data = await _post(sim, http, payload)
    assert status == 400
    assert "maximum of 4 blocks with cache_control" in data["error"]["message"]
    # Nested blocks count too: four in a document of content blocks, one in a search result.
    document = {"type": "document", "source": {"type": "content", "content": marked[:4]}}
    found = {"type": "search_result", "source": "s", "title": "t", "content": marked[4:]}
    payload["messages"] = [{"role": "user", "content": [document, found]}]
    status, data = await _post(sim, http, payload)
    assert (status, data["error"]["message"][-8:]) == (400, "Found 5.")
    payload["messages"] = [{"role": "user", "content": [document]}]
    status, _ = await _post(sim, http, payload)
    assert status == 200
    found["content"] = [{"type": "text", "text": "x", "cache_control": {"type": "forever"}}]
    payload["messages"] = [{"role": "user", "content": [found]}]
    status, data = await _post(sim, http, payload)
    assert (status, data["error"]["message"]) == (
        400,
        "messages.0.content.0.search_result.content.0.cache_control.type: "
        "Input should be 'ephemeral'",
    )


SYSTEM_TURN_BETA = "claude-code-20250219,mid-conversation-system-2026-04-07"


async def test_system_turns_in_messages_need_their_beta(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    turns = [
        {"role": "user", "content": "Hello there"},
        {"role": "system", "content": "Answer briefly."},
    ]
    hdrs = {"x-api-key": "k", "anthropic-version": OLD_VERSION}
    status, answer = await _post(sim, http, body(messages=turns), hdrs)
    assert status == 400
    assert answer["error"]["message"] == "messages.1.role: Input should be 'user' or 'assistant'"
    with_beta = {**hdrs, "anthropic-beta": SYSTEM_TURN_BETA}
    status, answer = await _post(sim, http, body(messages=turns), with_beta)
    assert status == 200 and answer["content"][0]["type"] == "text"
    image = {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}
    for content, message in (
        ([image], "messages.1.content.0.type: Input should be 'text'"),
        ("", "messages.1.content: system messages must have non-empty content"),
    ):
        bad = [turns[0], {"role": "system", "content": content}]
        status, answer = await _post(sim, http, body(messages=bad), with_beta)
        assert (status, answer["error"]["message"]) == (400, message)


async def test_thinking_blocks_carry_no_cache_control(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    """The API caches a thinking block with its turn, never marked itself."""
    thinking = {"type": "thinking", "thinking": "Let me see.", "signature": "sig",
                "cache_control": {"type": "ephemeral"}}  # fmt: skip
    payload = body()
    payload["messages"] = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": [thinking, {"type": "text", "text": "Hello"}]},
        {"role": "user", "content": "Again"},
    ]
    status, data = await _post(sim, http, payload)
    assert status == 400
    assert "thinking.cache_control" in data["error"]["message"]


async def test_thinking_in_a_tool_loop_needs_the_last_calls_thinking_first(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    """With thinking enabled, the last assistant message, when it calls tools, starts
    with a thinking block; a user turn after the result is still inside the loop."""
    call = {"type": "tool_use", "id": "toolu_1", "name": "weather", "input": {}}
    thought = {"type": "thinking", "thinking": "Look it up.", "signature": "sig"}

    def loop(*first: dict[str, Any]) -> dict[str, Any]:
        return body(
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 2048},
            tools=[{"name": "weather", "input_schema": {"type": "object"}}],
            messages=[
                {"role": "user", "content": "Weather in Paris?"},
                {"role": "assistant", "content": [*first, call]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1"}]},
                {"role": "user", "content": "Also answer in French."},
            ],
        )

    status, data = await _post(sim, http, loop())
    assert (status, data["error"]["type"]) == (400, "invalid_request_error")
    assert data["error"]["message"] == "messages.1.content.0.type: " + THINKING_TOOL_LOOP.format(
        first="tool_use"
    )
    assert "final `assistant` message must start with a thinking block" in THINKING_TOOL_LOOP
    assert (await _post(sim, http, loop(thought)))[0] == 200
    without = {key: value for key, value in loop().items() if key != "thinking"}
    assert (await _post(sim, http, without))[0] == 200
    adaptive = {**loop(), "model": NEW_MODEL, "thinking": {"type": "adaptive"}}
    assert (await _post(sim, http, adaptive))[0] == 200
