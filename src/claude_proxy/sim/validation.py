"""Request validation: raw body bytes to a typed MessagesRequest, or a 400/404 in API style.

Messages follow pydantic's wording (``max_tokens: Field required``,
``messages.1.role: Input should be 'user' or 'assistant'``,
``foo: Extra inputs are not permitted``) with the dotted field path in front, as the API does.
Structural checks come first, then the model lookup (404), then model-dependent rules.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from claude_proxy.errors import InvalidRequest, NotFound
from claude_proxy.sim.blocks import check_blocks, check_cache_control, check_text_blocks
from claude_proxy.sim.models import EFFORTS, ModelSpec, lookup_model

__all__ = [
    "MID_CONVERSATION_SYSTEM",
    "NEW_VERSION",
    "PREFILL_REFUSED",
    "THINKING_TOOL_LOOP",
    "Message",
    "MessagesRequest",
    "load_object",
    "parse_request",
]

NEW_VERSION = "2026-10-21"
# The beta that lets ``messages`` carry ``role: "system"`` turns (Claude Code sends them).
MID_CONVERSATION_SYSTEM = "mid-conversation-system-2026-04-07"
PREFILL_REFUSED = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)
THINKING_TOOL_LOOP = (
    "Expected `thinking` or `redacted_thinking`, but found `{first}`. When `thinking` is "
    "enabled, a final `assistant` message must start with a thinking block (preceeding the "
    "lastmost set of `tool_use` and `tool_result` blocks). We recommend you include thinking "
    "blocks from previous turns. To avoid this requirement, disable `thinking`."
)
_SAMPLING = ("temperature", "top_p", "top_k")
_PASS_THROUGH = frozenset(
    {
        "cache_control",
        "service_tier",
        "output_config",
        "container",
        "inference_geo",
        "speed",
        "diagnostics",
        "context_management",
        "mcp_servers",
    }
)
_MESSAGES_FIELDS = (
    frozenset(
        {
            "model",
            "messages",
            "max_tokens",
            "system",
            "stop_sequences",
            "stream",
            "metadata",
            "tools",
            "tool_choice",
            "thinking",
            *_SAMPLING,
        }
    )
    | _PASS_THROUGH
)
_COUNT_FIELDS = (
    frozenset({"model", "messages", "system", "tools", "tool_choice", "thinking"}) | _PASS_THROUGH
)


@dataclass(frozen=True, slots=True)
class Message:
    role: str
    blocks: list[dict[str, Any]]  # string content normalised to one text block


@dataclass(frozen=True, slots=True)
class MessagesRequest:
    """A validated request; fields the simulator does not act on are simply dropped."""

    model_name: str
    model: ModelSpec
    messages: list[Message]
    system: list[dict[str, Any]]
    max_tokens: int  # 0 for count_tokens requests
    stop_sequences: list[str]
    stream: bool
    tools: list[dict[str, Any]]
    tool_choice: dict[str, Any] | None
    thinking: dict[str, Any] | None
    cache_control: dict[str, Any] | None
    version: str
    # output_config.format's JSON schema: the answer is one JSON value valid against it.
    output_schema: dict[str, Any] | None = None

    @property
    def thinking_on(self) -> bool:
        return self.thinking is not None and self.thinking.get("type") in ("enabled", "adaptive")


def _bad(path: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{path}: {message}")


def load_object(body: bytes) -> dict[str, Any]:
    if not body.strip():
        raise InvalidRequest("There was an error parsing the body of your request: empty body")
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(
            f"There was an error parsing the body of your request: invalid JSON ({exc})"
        ) from None
    if not isinstance(data, dict):
        raise InvalidRequest("body: Input should be a valid dictionary or object")
    return data


def _int(data: dict[str, Any], key: str, minimum: int) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _bad(key, "Input should be a valid integer")
    if value < minimum:
        raise _bad(key, f"Input should be greater than or equal to {minimum}")
    return value


def _check_number(data: dict[str, Any], key: str, low: float, high: float | None) -> None:
    value = data.get(key)
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _bad(key, "Input should be a valid number")
    if value < low:
        raise _bad(key, f"Input should be greater than or equal to {low:g}")
    if high is not None and value > high:
        raise _bad(key, f"Input should be less than or equal to {high:g}")


def _messages(raw: Any, version: str, system_turns: bool) -> list[Message]:
    if not isinstance(raw, list):
        raise _bad("messages", "Input should be a valid list")
    if not raw:
        raise _bad("messages", "List should have at least 1 item after validation, not 0")
    out: list[Message] = []
    for i, item in enumerate(raw):
        path = f"messages.{i}"
        if not isinstance(item, dict):
            raise _bad(path, "Input should be a valid dictionary or object")
        for key in item:
            if key not in ("role", "content"):
                raise _bad(f"{path}.{key}", "Extra inputs are not permitted")
        for key in ("role", "content"):
            if key not in item:
                raise _bad(f"{path}.{key}", "Field required")
        role = item["role"]
        if role == "system" and system_turns:
            # Instructions in the middle of a conversation: text only, never empty.
            blocks = _system(item["content"], f"{path}.content")
            if not blocks:
                raise _bad(f"{path}.content", "system messages must have non-empty content")
            out.append(Message(role, blocks))
            continue
        if role not in ("user", "assistant"):
            raise _bad(f"{path}.role", "Input should be 'user' or 'assistant'")
        content = item["content"]
        if isinstance(content, str):
            blocks = [{"type": "text", "text": content}] if content else []
        elif isinstance(content, list):
            blocks = check_blocks(content, f"{path}.content", role, version)
        else:
            raise _bad(f"{path}.content", "Input should be a valid string or list")
        last = i == len(raw) - 1
        if not blocks and not (last and role == "assistant"):
            raise _bad(
                "messages",
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message",
            )
        out.append(Message(role, blocks))
    return out


def _check_tool_pairs(messages: list[Message]) -> None:
    """Every tool_use is answered by a tool_result in the next turn, and every tool_result
    answers a tool_use of the turn before (system turns do not count as turns)."""
    before: tuple[int, Message] | None = None  # the previous turn, and its index
    for i, message in enumerate(messages):
        if message.role == "system":
            continue
        used = _tool_uses(before[1]) if before is not None else set()
        if message.role == "user":
            for j, block in enumerate(message.blocks):
                if block.get("type") == "tool_result" and block["tool_use_id"] not in used:
                    raise _bad(
                        f"messages.{i}.content.{j}",
                        "unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a "
                        "corresponding `tool_use` block in the previous message.",
                    )
        answered = {b["tool_use_id"] for b in message.blocks if b.get("type") == "tool_result"}
        missing = sorted(used - answered)
        if before is not None and missing:
            raise _bad(
                f"messages.{before[0]}",
                "`tool_use` ids were found without `tool_result` blocks immediately after: "
                f"{', '.join(missing)}. Each `tool_use` block must have a corresponding "
                "`tool_result` block in the next message.",
            )
        before = (i, message)


def _tool_uses(message: Message) -> set[str]:
    if message.role != "assistant":
        return set()
    return {str(b["id"]) for b in message.blocks if b.get("type") == "tool_use"}


def _system(raw: Any, path: str = "system") -> list[dict[str, Any]]:
    if raw is None:
        return []
    if isinstance(raw, str):
        return [{"type": "text", "text": raw}] if raw else []
    if isinstance(raw, list):
        return check_text_blocks(raw, path)
    raise _bad(path, "Input should be a valid string or list")


def _stop_sequences(raw: Any) -> list[str]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("stop_sequences", "Input should be a valid list")
    for i, item in enumerate(raw):
        if not isinstance(item, str):
            raise _bad(f"stop_sequences.{i}", "Input should be a valid string")
    return [s for s in raw if s]


def _metadata(raw: Any) -> None:
    if raw is None:
        return
    if not isinstance(raw, dict):
        raise _bad("metadata", "Input should be a valid dictionary or object")
    for key, value in raw.items():
        if key != "user_id":
            raise _bad(f"metadata.{key}", "Extra inputs are not permitted")
        if value is not None and not isinstance(value, str):
            raise _bad("metadata.user_id", "Input should be a valid string")


def _tools(raw: Any) -> list[dict[str, Any]]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise _bad("tools", "Input should be a valid list")
    names: set[str] = set()
    for i, tool in enumerate(raw):
        path = f"tools.{i}"
        if not isinstance(tool, dict):
            raise _bad(path, "Input should be a valid dictionary or object")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{path}.name", "Field required")
        # Server tools carry a versioned `type` and no input_schema.
        if tool.get("type") in (None, "custom") and not isinstance(tool.get("input_schema"), dict):
            raise _bad(f"{path}.input_schema", "Field required")
        if name in names:
            raise _bad("tools", "Tool names must be unique.")
        names.add(name)
        check_cache_control(tool.get("cache_control"), f"{path}.cache_control")
    return list(raw)


def _tool_choice(raw: Any, tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("tool_choice", "Input should be a valid dictionary or object")
    kind = raw.get("type")
    if kind not in ("auto", "any", "none", "tool"):
        raise _bad("tool_choice.type", "Input should be 'auto', 'any', 'none' or 'tool'")
    if kind == "tool":
        name = raw.get("name")
        if not isinstance(name, str):
            raise _bad("tool_choice.tool.name", "Field required")
        if name not in {t.get("name") for t in tools}:
            raise _bad("tool_choice", f"Tool '{name}' not found in provided tools")
    return raw


def _thinking(raw: Any, max_tokens: int, count_only: bool) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("thinking", "Input should be a valid dictionary or object")
    kind = raw.get("type")
    if kind not in ("enabled", "disabled", "adaptive"):
        raise _bad("thinking.type", "Input should be 'enabled', 'disabled' or 'adaptive'")
    if kind == "enabled":
        budget = raw.get("budget_tokens")
        if budget is None:
            raise _bad("thinking.enabled.budget_tokens", "Field required")
        if isinstance(budget, bool) or not isinstance(budget, int):
            raise _bad("thinking.enabled.budget_tokens", "Input should be a valid integer")
        if budget < 1024:
            raise _bad(
                "thinking.enabled.budget_tokens", "Input should be greater than or equal to 1024"
            )
        if not count_only and budget >= max_tokens:
            raise InvalidRequest("`max_tokens` must be greater than `thinking.budget_tokens`.")
    return raw


def _model_rules(data: dict[str, Any], req: MessagesRequest, count_only: bool) -> None:
    spec = req.model
    if not count_only and req.max_tokens > spec.max_output:
        raise _bad(
            "max_tokens",
            f"{req.max_tokens} > {spec.max_output}, which is the maximum "
            f"allowed number of output tokens for {spec.id}",
        )
    for key in _SAMPLING:
        if key not in data:
            continue
        if not spec.accepts_sampling:
            raise InvalidRequest(f"`{key}` is deprecated for this model.")
        if req.version == NEW_VERSION:
            raise InvalidRequest(f"`{key}` is not supported with anthropic-version {NEW_VERSION}.")
    if spec.adaptive_thinking_only and req.thinking and req.thinking.get("type") == "enabled":
        raise _bad("thinking.type", "'enabled' is not supported for this model; use 'adaptive'")
    _sampling_rules(data, req, count_only)
    if not count_only and req.thinking is not None and req.thinking.get("type") == "enabled":
        _thinking_tool_loop(req.messages)
    _effort_rule(data.get("output_config"), spec)
    last = req.messages[-1]
    if last.role == "assistant" and not count_only:
        if not spec.accepts_prefill:
            raise InvalidRequest(PREFILL_REFUSED)
        if req.thinking_on:
            raise InvalidRequest(
                "Assistant message prefill is not supported when thinking is enabled."
            )
        tail = last.blocks[-1] if last.blocks else None
        if tail and tail.get("type") == "text" and tail["text"] != tail["text"].rstrip():
            raise InvalidRequest(
                "messages: final assistant content cannot end with trailing whitespace"
            )


def _thinking_tool_loop(messages: list[Message]) -> None:
    """With thinking enabled, the last assistant message, when it calls tools, starts
    with a thinking block: the model's reasoning before the calls whose results follow
    (consecutive user messages after them are one turn: still inside the loop).
    Adaptive thinking may not have thought, and is not held to it."""
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if message.role != "assistant":
            continue
        if not any(block.get("type") == "tool_use" for block in message.blocks):
            return
        first = message.blocks[0]["type"]
        if first not in ("thinking", "redacted_thinking"):
            raise _bad(f"messages.{i}.content.0.type", THINKING_TOOL_LOOP.format(first=first))
        return


def _sampling_rules(data: dict[str, Any], req: MessagesRequest, count_only: bool) -> None:
    """What sampling and thinking refuse together (models that take sampling at all)."""
    if req.model.sampling_exclusive and "temperature" in data and "top_p" in data:
        raise InvalidRequest(
            "`temperature` and `top_p` cannot both be specified for this model. "
            "Please use only one."
        )
    if not req.thinking_on or count_only:
        return
    if not req.model.extended_thinking:
        raise _bad("thinking", "Extended thinking is not supported for this model.")
    temperature, top_p = data.get("temperature"), data.get("top_p")
    if temperature is not None and temperature != 1:
        raise InvalidRequest("`temperature` may only be set to 1 when thinking is enabled.")
    if top_p is not None and top_p < 0.95:
        raise InvalidRequest("`top_p` must be at least 0.95 when thinking is enabled.")
    if data.get("top_k") is not None:
        raise InvalidRequest("`top_k` is not available when thinking is enabled.")
    if req.tool_choice is not None and req.tool_choice.get("type") in ("any", "tool"):
        raise InvalidRequest("Thinking may not be enabled when tool_choice forces tool use.")


def _effort_rule(raw: Any, spec: ModelSpec) -> None:
    effort = raw.get("effort") if isinstance(raw, dict) else None
    if effort is None:
        return
    if effort not in EFFORTS:
        levels = ", ".join(f"'{level}'" for level in EFFORTS[:-1])
        raise _bad("output_config.effort", f"Input should be {levels} or '{EFFORTS[-1]}'")
    if not spec.efforts:
        raise InvalidRequest("This model does not support the effort parameter.")
    if effort not in spec.efforts:
        raise InvalidRequest(
            f"This model does not support effort level '{effort}'. "
            f"Supported levels: {', '.join(sorted(spec.efforts))}."
        )


def _output_schema(raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("output_config", "Input should be a valid dictionary or object")
    fmt = raw.get("format")
    if fmt is None:
        return None
    if not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        raise _bad("output_config.format.type", "Input should be 'json_schema'")
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("output_config.format.schema", "Field required")
    return schema


def parse_request(
    body: bytes | dict[str, Any],
    version: str,
    *,
    count_only: bool = False,
    betas: frozenset[str] = frozenset(),
) -> MessagesRequest:
    """Validate a /v1/messages (or count_tokens) body; raise InvalidRequest / NotFound.

    ``body``: the raw bytes, or a JSON object already parsed (a batch's ``params``).
    ``betas``: the request's ``anthropic-beta`` features, which allow more shapes."""
    data = body if isinstance(body, dict) else load_object(body)
    allowed = _COUNT_FIELDS if count_only else _MESSAGES_FIELDS
    for key in data:
        if key not in allowed:
            raise _bad(key, "Extra inputs are not permitted")
    required = ("model", "messages") if count_only else ("model", "messages", "max_tokens")
    for key in required:
        if key not in data:
            raise _bad(key, "Field required")
    model_name = data["model"]
    if not isinstance(model_name, str):
        raise _bad("model", "Input should be a valid string")
    messages = _messages(data["messages"], version, MID_CONVERSATION_SYSTEM in betas)
    _check_tool_pairs(messages)
    max_tokens = 0
    if not count_only:
        # max_tokens 0 only warms the prompt cache, a 2026-10-21 feature.
        floor = 0 if version == NEW_VERSION else 1
        max_tokens = _int(data, "max_tokens", floor) or 0
    system = _system(data.get("system"))
    _check_number(data, "temperature", 0.0, 1.0)
    _check_number(data, "top_p", 0.0, 1.0)
    _int(data, "top_k", 0)
    stop = _stop_sequences(data.get("stop_sequences"))
    stream = data.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "Input should be a valid boolean")
    _metadata(data.get("metadata"))
    tools = _tools(data.get("tools"))
    tool_choice = _tool_choice(data.get("tool_choice"), tools)
    thinking = _thinking(data.get("thinking"), max_tokens, count_only)
    check_cache_control(data.get("cache_control"), "cache_control")
    spec = lookup_model(model_name)
    if spec is None or spec.retired:
        raise NotFound(f"model: {model_name}")
    req = MessagesRequest(
        model_name=model_name,
        model=spec,
        messages=messages,
        system=system,
        max_tokens=max_tokens,
        stop_sequences=stop,
        stream=stream,
        tools=tools,
        tool_choice=tool_choice,
        thinking=thinking,
        cache_control=data.get("cache_control"),
        version=version,
        output_schema=_output_schema(data.get("output_config")),
    )
    _model_rules(data, req, count_only)
    return req
