"""Where clients rely on the API refusing or shaping something, the simulator does too:
tool_use / tool_result pairs, images, structured output, and when a tool is called."""

from __future__ import annotations

import base64
import json
from typing import Any

import aiohttp
import anthropic
import jsonschema
import pytest

from .conftest import MODEL, Sim, body, headers

WEATHER = {
    "name": "get_weather",
    "description": "The current weather in a city.",
    "input_schema": {
        "type": "object",
        "properties": {"location": {"type": "string"}},
        "required": ["location"],
    },
}
# A 1x1 transparent PNG.
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000100e221bc330000000049454e44ae426082"
    )
).decode()


async def post(sim: Sim, http: aiohttp.ClientSession, payload: Any) -> tuple[int, Any]:
    async with http.post(f"{sim.url}/v1/messages", json=payload, headers=headers()) as r:
        return r.status, await r.json()


def tool_use(tool_id: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": tool_id, "name": "get_weather", "input": {"location": "x"}}


def tool_result(tool_id: str) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_id, "content": "sunny"}


async def test_tool_results_must_answer_the_tool_uses_before_them(
    sim: Sim, http: aiohttp.ClientSession
) -> None:
    asked = {"role": "user", "content": "Weather in Paris?"}
    used = {"role": "assistant", "content": [tool_use("toolu_01a")]}
    answered = [asked, used, {"role": "user", "content": [tool_result("toolu_01a")]}]
    status, _ = await post(sim, http, body(messages=answered, tools=[WEATHER]))
    assert status == 200
    stray = [asked, used, {"role": "user", "content": [tool_result("toolu_01zzz")]}]
    status, answer = await post(sim, http, body(messages=stray, tools=[WEATHER]))
    assert status == 400
    assert answer["error"]["message"].startswith(
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_01zzz"
    )
    unanswered = [asked, used, {"role": "user", "content": "and tomorrow?"}]
    status, answer = await post(sim, http, body(messages=unanswered, tools=[WEATHER]))
    assert status == 400
    assert answer["error"]["message"].startswith(
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately "
        "after: toolu_01a"
    )


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"type": "base64", "media_type": "image/bmp", "data": PNG},
            "source.base64.media_type: Input should be 'image/jpeg', 'image/png', "
            "'image/gif' or 'image/webp'",
        ),
        (
            {"type": "base64", "media_type": "image/png", "data": "not base64!"},
            "source.base64.data: The image data is not valid base64.",
        ),
        ({"type": "pdf", "data": PNG}, "source.type: Input should be 'base64', 'url' or 'file'"),
    ],
)
async def test_bad_images_are_refused(
    sim: Sim, http: aiohttp.ClientSession, source: dict[str, Any], message: str
) -> None:
    content = [{"type": "image", "source": source}, {"type": "text", "text": "What is this?"}]
    status, answer = await post(sim, http, body(messages=[{"role": "user", "content": content}]))
    assert status == 400
    assert answer["error"]["message"] == f"messages.0.content.0.image.{message}"


async def test_a_good_image_is_accepted(sim: Sim, http: aiohttp.ClientSession) -> None:
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": PNG}}
    content = [image, {"type": "text", "text": "What is this?"}]
    status, _ = await post(sim, http, body(messages=[{"role": "user", "content": content}]))
    assert status == 200


SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string", "minLength": 3, "maxLength": 40},
        "year": {"type": "integer", "minimum": 1900, "maximum": 2030},
        "rating": {"type": "number", "exclusiveMinimum": 0, "maximum": 5},
        "genre": {"enum": ["drama", "comedy"]},
        "released": {"type": "string", "format": "date"},
        "cast": {"type": "array", "items": {"$ref": "#/$defs/Person"}, "minItems": 2},
        "sequel": {"anyOf": [{"type": "null"}, {"$ref": "#/$defs/Person"}]},
    },
    "required": ["title", "year", "rating", "genre", "released", "cast", "sequel"],
    "additionalProperties": False,
    "$defs": {
        "Person": {
            "type": "object",
            "properties": {"name": {"type": "string"}, "age": {"type": ["integer", "null"]}},
            "required": ["name", "age"],
            "additionalProperties": False,
        }
    },
}


@pytest.mark.parametrize("stream", [False, True])
async def test_structured_output_is_json_valid_against_its_schema(
    client: anthropic.AsyncAnthropic, stream: bool
) -> None:
    request: dict[str, Any] = {
        "model": MODEL,
        "max_tokens": 1000,
        "messages": [{"role": "user", "content": "Describe a film."}],
        "extra_body": {"output_config": {"format": {"type": "json_schema", "schema": SCHEMA}}},
    }
    if stream:
        async with client.messages.stream(**request) as events:
            message = await events.get_final_message()
    else:
        message = await client.messages.create(**request)
    assert message.stop_reason == "end_turn"
    assert message.content[0].type == "text"
    jsonschema.validate(json.loads(message.content[0].text), SCHEMA)


async def test_a_plain_question_calls_the_tool_it_is_about(
    client: anthropic.AsyncAnthropic,
) -> None:
    asked = await client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "What's the weather in Paris?"}],
    )
    assert asked.stop_reason == "tool_use"
    assert [b.name for b in asked.content if b.type == "tool_use"] == ["get_weather"]
    unrelated = await client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[{"role": "user", "content": "Tell me a story about a lighthouse."}],
    )
    assert unrelated.stop_reason != "tool_use"
    # Context a client adds to the prompt (Claude Code's reminders) is not the ask.
    reminder = "<system-reminder>Tools: get_weather reports the weather.</system-reminder>"
    greeted = await client.messages.create(
        model=MODEL,
        max_tokens=200,
        tools=[WEATHER],  # type: ignore[list-item]
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hi!"}, {"type": "text", "text": reminder}],
            }
        ],
    )
    assert greeted.stop_reason != "tool_use"
