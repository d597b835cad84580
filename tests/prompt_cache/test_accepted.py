"""Every body the plan makes is one the API takes: checked against the simulator's own
validation and cache rules on many generated requests, across models and both versions.

The prompt the cache sees is unchanged (the simulator's units, which ignore markers and
read a string as one text block, are equal), the client's breakpoints are all still
there, at most four in all, 1h ones before 5m ones, none on a thinking block.
"""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from claude_proxy.prompt_cache import min_cacheable_tokens, plan
from claude_proxy.sim.cache import PromptCache
from claude_proxy.sim.tokens import PromptUnit, canonical, inner_markers
from claude_proxy.sim.validation import parse_request

from .bodies import IMAGE, markers, text

MODELS = ["claude-haiku-4-5", "claude-sonnet-4-5", "claude-sonnet-4-6", "claude-opus-4-7",
          "claude-opus-5", "claude-sonnet-5-5"]  # fmt: skip
VERSIONS = ["2023-06-01", "2026-10-21"]


class _Clock:
    def __call__(self) -> float:
        return 0.0


def _text_block(rng: random.Random) -> dict[str, Any]:
    return {"type": "text", "text": text(rng.choice([5, 60, 900, 2500]), f"t{rng.random()}")}


def _user_blocks(rng: random.Random, pending: list[str]) -> Any:
    blocks: list[dict[str, Any]] = []
    for tool_id in pending:
        content: Any = text(rng.choice([10, 400]), tool_id)
        if rng.random() < 0.5:
            content = [_text_block(rng)]
        blocks.append({"type": "tool_result", "tool_use_id": tool_id, "content": content})
    if not pending and rng.random() < 0.3:
        return text(rng.choice([5, 300, 1500]), f"u{rng.random()}")  # a string content
    if rng.random() < 0.3:
        blocks.append(dict(IMAGE))
    if rng.random() < 0.3:
        blocks.append({"type": "document", "source": {"type": "text", "media_type": "text/plain",
                                                      "data": text(2000, "doc")}})  # fmt: skip
    blocks.append(_text_block(rng))
    return blocks


def _assistant_blocks(rng: random.Random, turn: int) -> tuple[list[dict[str, Any]], list[str]]:
    blocks: list[dict[str, Any]] = []
    if rng.random() < 0.3:
        blocks.append({"type": "thinking", "thinking": "Let me think.", "signature": "sig"})
    if rng.random() < 0.1:
        blocks.append({"type": "redacted_thinking", "data": "opaque"})
    blocks.append(_text_block(rng))
    ids = [f"toolu_{turn}_{i}" for i in range(rng.choice([0, 0, 1, 3, 12]))]
    blocks.extend({"type": "tool_use", "id": i, "name": "search", "input": {"q": i}} for i in ids)
    return blocks, ids


def _client_marks(rng: random.Random, request: dict[str, Any]) -> None:
    """Up to four of the client's own breakpoints, 1h ones first, where the API takes them."""
    places: list[dict[str, Any]] = list(request.get("tools", []))
    if isinstance(request.get("system"), list):
        places.extend(request["system"])
    for message in request["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if block["type"] in ("text", "image", "document", "tool_use", "tool_result"):
                    places.append(block)
                if block["type"] == "tool_result" and isinstance(block["content"], list):
                    places.extend(block["content"])
    chosen = sorted(rng.sample(range(len(places)), min(len(places), rng.choice([0, 0, 1, 2, 4]))))
    hours = rng.randint(0, len(chosen))
    for n, index in enumerate(chosen):
        marker = {"type": "ephemeral", "ttl": "1h"} if n < hours else {"type": "ephemeral"}
        places[index]["cache_control"] = marker


def generated(seed: int) -> tuple[dict[str, Any], str]:
    rng = random.Random(seed)
    request: dict[str, Any] = {"model": rng.choice(MODELS), "max_tokens": 100}
    if rng.random() < 0.5:
        request["tools"] = [
            {"name": f"tool{i}", "description": text(rng.choice([20, 800]), f"tool{i}"),
             "input_schema": {"type": "object"}}
            for i in range(rng.randint(1, 3))
        ]  # fmt: skip
        request["tools"][0]["name"] = "search"
    system = rng.random()
    if system < 0.3:
        request["system"] = text(rng.choice([10, 1500, 4500]), "system")
    elif system < 0.6:
        request["system"] = [_text_block(rng) for _ in range(rng.randint(1, 3))]
    messages: list[dict[str, Any]] = []
    pending: list[str] = []
    for turn in range(rng.randint(0, 10)):
        messages.append({"role": "user", "content": _user_blocks(rng, pending)})
        blocks, pending = _assistant_blocks(rng, turn)
        messages.append({"role": "assistant", "content": blocks})
    messages.append({"role": "user", "content": _user_blocks(rng, pending)})
    request["messages"] = messages
    _client_marks(rng, request)
    if rng.random() < 0.2 and not markers(request):
        _marks_where_the_plan_would(request)
    if rng.random() < 0.05 and len(markers(request)) < 4:
        request["cache_control"] = {"type": "ephemeral"}
    return request, rng.choice(VERSIONS)


def _marks_where_the_plan_would(request: dict[str, Any]) -> None:
    """A client that marks itself the end of its prompt, the block before it, and its
    system or its tools: often nothing is left for the plan (``covered``)."""
    mark = {"type": "ephemeral"}
    last = request["messages"][-1]["content"]
    places = last[-2:] if isinstance(last, list) else []
    if isinstance(request.get("system"), list):
        places.append(request["system"][-1])
    elif request.get("tools"):
        places.append(request["tools"][-1])
    for place in places:
        place["cache_control"] = mark


def _accepted(request: dict[str, Any], version: str) -> list[bytes]:
    """What the cache reads of ``request`` (the simulator's unit keys, which ignore
    markers), after checking the simulator takes it: its validation, then its cache's
    rules (at most four breakpoints, 1h before 5m). Token counts play no part in those
    rules, so each unit counts one (the simulator's tokenizer is slow on long texts)."""
    parsed = parse_request(orjson.dumps(request), version)
    found = [PromptUnit(canonical(tool), 1, tool.get("cache_control")) for tool in parsed.tools]
    found.extend(PromptUnit(b"S" + canonical(b), 1, b.get("cache_control")) for b in parsed.system)
    for message in parsed.messages:
        found.extend(
            PromptUnit(
                message.role.encode() + canonical(b), 1, b.get("cache_control"), inner_markers(b)
            )
            for b in message.blocks
        )
    PromptCache(_Clock(), 300, 3600).account(parsed.model.id, found, parsed.cache_control, 1)
    return [unit.key for unit in found]


@pytest.mark.parametrize("ttl", ["5m", "1h"])
def test_every_planned_body_is_accepted_and_means_the_same(ttl: str) -> None:
    outcomes: dict[str, int] = {}
    for seed in range(250):
        request, version = generated(seed)
        before = _accepted(request, version)
        minimum = min_cacheable_tokens(request["model"])
        result = plan(request, ttl=ttl, min_tokens=minimum)  # type: ignore[arg-type]
        outcomes[result.outcome] = outcomes.get(result.outcome, 0) + 1
        if result.body is None:
            assert not result.added
            continue
        after = _accepted(result.body, version)
        assert after == before, seed
        theirs, ours = markers(request), markers(result.body)
        assert len(ours) <= 4 and len(ours) == len(theirs) + len(result.added), seed
        assert all(marker in ours for marker in theirs), seed
    # The generator covers every way out (automatic, invalid and full are rarer).
    assert outcomes["added"] > 100 and outcomes["short"] > 5 and outcomes.get("covered", 0) > 5
    assert outcomes.get("automatic", 0) > 0 and outcomes.get("full", 0) > 0
