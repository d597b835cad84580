"""The issue's property: policies never produce a request the simulator rejects.

Every model the simulator serves x both API versions x aggressive policies x a range of
client requests: each client request the simulator accepts goes through the policies,
and the result must be accepted too (the simulator's own validation, in process). The
same property end to end, through a gateway to the simulator, is in
``tests/pipeline/test_policies.py``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from claude_proxy.errors import GatewayError
from claude_proxy.policies import PolicyRule, RequestFacts, Target, apply_policies, matching
from claude_proxy.sim.models import CATALOGUE
from claude_proxy.sim.validation import parse_request

VERSIONS = ("2023-06-01", "2026-10-21")
EFFORT_BETA = "effort-2025-11-24"
TOOLS = [{"name": "record", "input_schema": {"type": "object"}}]

AGGRESSIVE: list[list[dict[str, Any]]] = [
    [
        {
            "name": "everything-up",
            "set": {
                "temperature": 0.0,
                "top_p": 0.5,
                "max_tokens": 500_000,
                "thinking_budget": 200_000,
                "effort": "max",
            },
        }
    ],
    [
        {
            "name": "everything-down",
            "set": {"max_tokens": 1, "thinking_budget": 1024, "effort": "low", "top_p": 0.0},
        }
    ],
    [
        {
            "name": "defaults",
            "default": {
                "temperature": 0.7,
                "top_p": 0.9,
                "max_tokens": 4096,
                "thinking_budget": 2048,
                "effort": "xhigh",
            },
        }
    ],
    [
        {
            "name": "clamps",
            "clamp": {
                "temperature": {"max": 0.2},
                "top_p": {"min": 0.99},
                "max_tokens": {"min": 70_000, "max": 100_000},
                "thinking_budget": {"max": 1024},
                "effort": {"min": "xhigh"},
            },
        }
    ],
    [{"name": "budget-at-max", "set": {"max_tokens": 1500, "thinking_budget": 1500}}],
    [
        {"name": "cold", "match": {"tasks": "extraction"}, "set": {"temperature": 0.0}},
        {"name": "nucleus", "set": {"top_p": 0.3, "max_tokens": 1100}},
        {
            "name": "think-late",
            "match": {"turns": {"min": 2}},
            "default": {"thinking_budget": 1024},
        },
    ],
]
POLICIES = [[PolicyRule.model_validate(rule) for rule in rules] for rules in AGGRESSIVE]


def _ask(max_tokens: int = 256, **fields: Any) -> dict[str, Any]:
    return {
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Extract the total as JSON: 3 x 4 EUR"}],
        **fields,
    }


def _conversation(last: list[dict[str, Any]], **fields: Any) -> dict[str, Any]:
    return {**_ask(**fields), "messages": [_ask()["messages"][0], *last]}


_THINK = {"type": "enabled", "budget_tokens": 2048}
_CALL = {"type": "tool_use", "id": "t1", "name": "record", "input": {}}
_RESULT = {
    "role": "user",
    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
}
_THOUGHT = {"type": "thinking", "thinking": "Record it.", "signature": "sig"}
_MORE = {"role": "user", "content": "And in USD?"}


def _tool_loop(*after: dict[str, Any], first: Any = (), **fields: Any) -> dict[str, Any]:
    """A tool call and its result, then ``after`` (the API merges consecutive user
    messages: a user turn right after the result is still inside the loop)."""
    call = {"role": "assistant", "content": [*first, _CALL]}
    return _conversation([call, _RESULT, *after], tools=TOOLS, **fields)


# (client body without its model, anthropic-beta)
REQUESTS: list[tuple[dict[str, Any], str]] = [
    (_ask(), ""),
    (_ask(1), ""),
    (_ask(64_000), ""),
    (_ask(128_000), ""),
    (_ask(stream=True), ""),
    (_ask(0), ""),
    (_ask(temperature=0.5), ""),
    (_ask(top_p=0.8), ""),
    (_ask(top_k=5), ""),
    (_ask(4096, thinking=_THINK), ""),
    (_ask(1025, thinking={"type": "enabled", "budget_tokens": 1024}), ""),
    (_ask(32_000, thinking={"type": "enabled", "budget_tokens": 30_000}), ""),
    (_ask(2000, thinking={"type": "adaptive"}), ""),
    (_ask(thinking={"type": "disabled"}), ""),
    (_ask(4096, thinking=_THINK, temperature=1), ""),
    (_ask(tools=TOOLS, tool_choice={"type": "tool", "name": "record"}), ""),
    (_ask(output_config={"effort": "high"}), ""),
    (_ask(output_config={"effort": "max"}), EFFORT_BETA),
    (_ask(output_config={"format": {"type": "json_schema", "schema": {"type": "object"}}}), ""),
    (_ask(), EFFORT_BETA),
    (_conversation([{"role": "assistant", "content": '{"total":'}]), ""),
    (_tool_loop(), ""),
    (_tool_loop(_MORE), ""),
    (_tool_loop(_MORE, max_tokens=4096), ""),
    (_tool_loop(_MORE, first=[{"type": "text", "text": "Recording."}]), ""),
    (_tool_loop(_MORE, first=[_THOUGHT], max_tokens=4096, thinking=_THINK), ""),
    (_tool_loop(_MORE, first=[_THOUGHT], max_tokens=4096), ""),
    (_tool_loop({"role": "assistant", "content": "12 EUR"}, _MORE, max_tokens=4096), ""),
    (
        _conversation(
            [
                {"role": "assistant", "content": "12 EUR"},
                {"role": "user", "content": "And in USD?"},
            ],
            max_tokens=2048,
        ),
        "",
    ),
]
MODELS = sorted(name for name, spec in CATALOGUE.items() if not spec.retired)  # ids and aliases


def _accepted(body: dict[str, Any], version: str, beta: str) -> bool:
    try:
        parse_request(body, version, betas=frozenset(filter(None, beta.split(","))))
    except GatewayError:
        return False
    return True


def cases() -> Iterator[tuple[str, str, dict[str, Any], str]]:
    """(model, version, client body, beta) for every client request the simulator accepts."""
    for model in MODELS:
        for version in VERSIONS:
            for request, beta in REQUESTS:
                body = {"model": model, **request}
                if _accepted(body, version, beta):
                    yield model, version, body, beta


def test_policies_never_turn_an_accepted_request_into_a_refused_one() -> None:
    seen: Counter[str] = Counter()
    for model, version, body, beta in cases():
        seen["client requests"] += 1
        facts = RequestFacts(body, route="messages", tenant="default", headers={})
        target = Target.of("messages", model, version, beta)
        for policies in POLICIES:
            changed, report = apply_policies(body, matching(policies, facts), target)
            if changed is None:
                continue
            assert _accepted(changed, version, beta), (
                model,
                version,
                body,
                changed,
                report.header(),
            )
            seen["changed"] += 1
            for applied in report.applied:
                seen[f"{applied.parameter} {applied.action}"] += 1
            for skip in report.skipped:
                seen[f"skipped {skip.reason}"] += 1
    # Not true by construction: every parameter was really changed, and the fitting
    # (model limits, thinking, versions, exclusive sampling) really had to act.
    assert seen["client requests"] > 250
    for parameter in ("temperature", "top_p", "max_tokens", "thinking_budget", "effort"):
        assert seen[f"{parameter} set"] > 0, parameter
    for event in (
        "thinking_budget default",
        "thinking_budget fitted",
        "max_tokens clamped",
        "effort clamped",
        "temperature clamped",
        "skipped version",
        "skipped model",
        "skipped exclusive",
        "skipped thinking",
        "skipped beta",
        "skipped prefill",
        "skipped tool_choice",
        "skipped tool_loop",
        "skipped warm_up",
        "skipped adaptive",
    ):
        assert seen[event] > 0, (event, seen)
