"""What the rules do to a body: precedence, set/default/clamp, and fitting to the model."""

from __future__ import annotations

from typing import Any

from claude_proxy.policies import (
    PolicyReport,
    PolicyRule,
    RequestFacts,
    Target,
    apply_policies,
    matching,
)
from tests.policies.test_property import AGGRESSIVE

OLD = "2023-06-01"
NEW = "2026-10-21"


def rules(*specs: dict[str, Any]) -> list[PolicyRule]:
    return [PolicyRule.model_validate({"name": f"p{i}", **s}) for i, s in enumerate(specs)]


def body(model: str = "claude-haiku-4-5", max_tokens: int = 2048, **fields: Any) -> dict[str, Any]:
    return {
        "model": model,
        "max_tokens": max_tokens,
        "messages": [{"role": "user", "content": "Hi"}],
        **fields,
    }


def run(
    sent: dict[str, Any], *specs: dict[str, Any], version: str = OLD, betas: str = ""
) -> tuple[dict[str, Any], PolicyReport]:
    target = Target.of("messages", sent.get("model"), version, betas)
    changed, report = apply_policies(sent, rules(*specs), target)
    return (sent if changed is None else changed), report


def skipped(report: PolicyReport) -> dict[str, str]:
    return {s.parameter: s.reason for s in report.skipped}


def test_set_default_and_clamp() -> None:
    sent = body(temperature=0.9)
    out, report = run(sent, {"set": {"max_tokens": 512}, "clamp": {"temperature": {"max": 0.3}}})
    assert (out["max_tokens"], out["temperature"]) == (512, 0.3)
    assert report.header() == "p0; max_tokens=512 (set); temperature=0.3 (clamped)"
    out, _ = run(body(), {"default": {"temperature": 0.2}, "clamp": {"top_p": {"max": 0.5}}})
    assert out["temperature"] == 0.2 and "top_p" not in out  # a clamp adds nothing
    out, report = run(body(temperature=0.7), {"default": {"temperature": 0.2}})
    assert out["temperature"] == 0.7 and report.applied == []  # the client's value stays
    assert sent["temperature"] == 0.9  # the client's body is never changed in place


def test_the_first_matching_rule_decides_each_parameter() -> None:
    out, report = run(
        body(),
        {"set": {"max_tokens": 300}},
        {"set": {"max_tokens": 900, "temperature": 0.1}, "clamp": {"top_p": {"max": 0.5}}},
    )
    assert (out["max_tokens"], out["temperature"]) == (300, 0.1)
    assert report.header() == "p0; max_tokens=300 (set), p1; temperature=0.1 (set)"


def test_an_unchanged_body_is_none_so_its_bytes_go_up_as_sent() -> None:
    sent = body(max_tokens=256)
    target = Target.of("messages", "claude-haiku-4-5", OLD)
    changed, report = apply_policies(sent, rules({"clamp": {"max_tokens": {"max": 1024}}}), target)
    assert changed is None and report.header() == "p0"


def test_sampling_only_where_model_and_version_take_it() -> None:
    spec = {"set": {"temperature": 0.0}}
    assert skipped(run(body(), spec, version=NEW)[1]) == {"temperature": "version"}
    assert skipped(run(body(model="claude-opus-4-7"), spec)[1]) == {"temperature": "model"}
    assert skipped(run(body(model="claude-next-9"), spec)[1]) == {"temperature": "unknown_model"}
    thinking = {"type": "enabled", "budget_tokens": 1024}
    assert skipped(run(body(thinking=thinking), spec)[1]) == {"temperature": "thinking"}
    out, report = run(body(), {"set": {"temperature": 0.0, "top_p": 0.5}})
    assert out["temperature"] == 0.0 and "top_p" not in out
    assert skipped(report) == {"top_p": "exclusive"}
    # Claude 3.7 takes both; an unknown model's own value may be adjusted, not added.
    out, _ = run(
        body(model="claude-3-7-sonnet-20250219"), {"set": {"temperature": 0, "top_p": 0.5}}
    )
    assert (out["temperature"], out["top_p"]) == (0, 0.5)
    out, _ = run(
        body(model="claude-next-9", temperature=0.9), {"clamp": {"temperature": {"max": 0.5}}}
    )
    assert out["temperature"] == 0.5


def test_max_tokens_within_the_model_and_the_context() -> None:
    out, report = run(body(stream=True), {"set": {"max_tokens": 200_000}})
    assert out["max_tokens"] == 64_000
    assert report.header() == "p0; max_tokens=64000 (set, model limit)"
    long = body(messages=[{"role": "user", "content": "word " * 100_000}], stream=True)
    out, report = run(long, {"set": {"max_tokens": 60_000}})
    assert 2048 < out["max_tokens"] < 60_000
    assert "(set, context limit)" in report.header()
    # Unknown models: lowered, never raised; a cache warm-up (0) is left alone.
    assert run(body(model="claude-next-9"), {"set": {"max_tokens": 9000}})[0]["max_tokens"] == 2048
    assert run(body(model="claude-next-9"), {"set": {"max_tokens": 900}})[0]["max_tokens"] == 900
    out, report = run(body(max_tokens=0), {"set": {"max_tokens": 500}}, version=NEW)
    assert out["max_tokens"] == 0 and skipped(report) == {"max_tokens": "warm_up"}


def test_a_raise_stops_where_a_call_that_does_not_stream_can_go() -> None:
    """The SDKs refuse a call that does not stream above 21,333 tokens (ten minutes),
    and the gateway's attempt would time out: a policy raises it no further."""
    big = {"set": {"max_tokens": 128_000}}
    for fields in ({}, {"stream": False}):
        out, report = run(body(model="claude-sonnet-4-6", max_tokens=1000, **fields), big)
        assert out["max_tokens"] == 21_333
        assert report.header() == "p0; max_tokens=21333 (fitted, non-streaming)"
    out, report = run(body(model="claude-sonnet-4-6", max_tokens=1000, stream=True), big)
    assert (out["max_tokens"], report.header()) == (128_000, "p0; max_tokens=128000 (set)")
    # A client above it already (with a timeout of its own) is not raised, but lowered.
    out, report = run(body(max_tokens=30_000), {"set": {"max_tokens": 60_000}})
    assert out["max_tokens"] == 30_000 and skipped(report) == {"max_tokens": "non_streaming"}
    assert run(body(max_tokens=30_000), {"set": {"max_tokens": 25_000}})[0]["max_tokens"] == 25_000


def test_thinking_budget_and_max_tokens_stay_in_order() -> None:
    thinking = {"type": "enabled", "budget_tokens": 8000, "display": "summarized"}
    # Lowering max_tokens under the client's budget lowers the budget with it.
    out, report = run(body(max_tokens=16_000, thinking=thinking), {"set": {"max_tokens": 3000}})
    assert out["max_tokens"] == 3000
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2999, "display": "summarized"}
    assert "thinking_budget=2999 (fitted, below max_tokens)" in report.header()
    # ...down to the minimum budget; then max_tokens stays above it.
    out, report = run(body(max_tokens=16_000, thinking=thinking), {"set": {"max_tokens": 500}})
    assert (out["max_tokens"], out["thinking"]["budget_tokens"]) == (1025, 1024)
    assert "max_tokens=1025 (set, above thinking budget)" in report.header()
    # A budget set above max_tokens is fitted below it.
    out, _ = run(body(max_tokens=4000, thinking=thinking), {"set": {"thinking_budget": 30_000}})
    assert out["thinking"]["budget_tokens"] == 3999


def test_thinking_is_turned_on_only_where_the_api_takes_it() -> None:
    spec = {"default": {"thinking_budget": 2048}}
    out, report = run(body(max_tokens=8000), spec)
    assert out["thinking"] == {"type": "enabled", "budget_tokens": 2048}
    assert report.header() == "p0; thinking_budget=2048 (default)"
    prefill = body(
        messages=[{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "{"}]
    )
    refusals = {
        "prefill": prefill,
        "tool_choice": body(
            tools=[{"name": "f", "input_schema": {}}], tool_choice={"type": "tool", "name": "f"}
        ),
        "tool_loop": body(
            messages=[
                {"role": "user", "content": "Weather?"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "f"}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]},
            ]
        ),
        "sampling": body(temperature=0.5),
        "disabled": body(thinking={"type": "disabled"}),
        "adaptive": body(model="claude-opus-4-6", thinking={"type": "adaptive"}),
        "max_tokens": body(max_tokens=1024),
        "unknown_model": body(model="claude-next-9"),
    }
    for reason, sent in refusals.items():
        out, report = run(sent, spec)
        assert out == sent and skipped(report) == {"thinking_budget": reason}, reason
    # Adaptive-only models take no budget: effort is their lever.
    assert skipped(run(body(model="claude-opus-4-8"), spec)[1]) == {"thinking_budget": "adaptive"}


def test_a_user_turn_after_a_tool_result_is_still_inside_the_tool_loop() -> None:
    """The API merges consecutive user messages: the last assistant message calls a
    tool without thinking first, so thinking turned on would be a 400."""
    spec = {"default": {"thinking_budget": 2048}}
    call = {"type": "tool_use", "id": "t", "name": "f", "input": {}}
    result = {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t"}]}

    def loop(*after: dict[str, Any], first: tuple[dict[str, Any], ...] = ()) -> dict[str, Any]:
        return body(max_tokens=8000, messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [*first, call]}, result, *after])  # fmt: skip

    also = {"role": "user", "content": "Also answer in French."}
    for inside in (loop(also), loop(also, also)):
        assert skipped(run(inside, spec)[1]) == {"thinking_budget": "tool_loop"}
    # Thought before its calls, or answered (the loop over): thinking may be turned on.
    thought = ({"type": "thinking", "thinking": "Look it up.", "signature": "sig"},)
    done = [{"role": "assistant", "content": "Sunny."}, also]
    for outside in (loop(also, first=thought), loop(*done)):
        assert run(outside, spec)[0]["thinking"] == {"type": "enabled", "budget_tokens": 2048}


def test_effort_at_the_levels_each_model_has() -> None:
    out, report = run(body(model="claude-opus-4-6"), {"set": {"effort": "xhigh"}})
    assert out["output_config"] == {"effort": "high"}  # 4.6 has max, not xhigh
    assert report.header() == "p0; effort=high (set, model level)"
    out, _ = run(body(model="claude-opus-4-7"), {"set": {"effort": "xhigh"}})
    assert out["output_config"] == {"effort": "xhigh"}
    schema = {"format": {"type": "json_schema", "schema": {}}, "effort": "max"}
    out, _ = run(
        body(model="claude-opus-4-7", output_config=schema),
        {"clamp": {"effort": {"max": "medium"}}},
    )
    assert out["output_config"] == {**schema, "effort": "medium"}
    assert skipped(run(body(), {"set": {"effort": "low"}})[1]) == {"effort": "model"}
    opus45 = body(model="claude-opus-4-5")
    assert skipped(run(opus45, {"set": {"effort": "low"}})[1]) == {"effort": "beta"}
    out, _ = run(opus45, {"set": {"effort": "low"}}, betas="a-beta,effort-2025-11-24")
    assert out["output_config"] == {"effort": "low"}


def test_malformed_client_values_are_left_to_the_api() -> None:
    sent = body(temperature="hot", output_config="fast", thinking={"type": "sometimes"})
    out, report = run(sent, {"set": {"temperature": 0.1, "effort": "low", "thinking_budget": 2048}})
    assert out == sent
    assert skipped(report) == {
        "temperature": "invalid",
        "effort": "invalid",
        "thinking_budget": "invalid",
    }


def test_documents_take_only_a_lower_max_tokens() -> None:
    document = {"model": "claude-haiku-4-5", "document": "…", "instruction": "Summarise."}
    target = Target.of("documents", "claude-haiku-4-5", OLD)
    spec = {"set": {"max_tokens": 300, "temperature": 0.0}}
    changed, report = apply_policies(document, rules(spec), target)
    assert changed == {**document, "max_tokens": 300}  # below the request's default of 1024
    assert skipped(report) == {"temperature": "route"}
    changed, report = apply_policies(document, rules({"set": {"max_tokens": 4000}}), target)
    assert changed is None and skipped(report) == {"max_tokens": "route"}


def test_odd_bodies_pass_through_without_an_error() -> None:
    """Whatever a body holds, the rules never raise: the API judges what is malformed."""
    odd: list[dict[str, Any]] = [
        {},
        {"messages": None, "metadata": "x", "system": 3},
        {"model": 5, "max_tokens": True, "messages": [1, "x", None, {"role": "user"}]},
        {"model": "claude-haiku-4-5", "thinking": "on", "max_tokens": 10, "messages": []},
        {"model": "claude-opus-4-6", "output_config": [], "tool_choice": "any", "tools": {}},
        {
            "model": "claude-haiku-4-5",
            "max_tokens": 5000,
            "thinking": {"type": "enabled", "budget_tokens": "lots"},
            "messages": [{"role": "assistant", "content": [None, {"type": "text"}]}],
        },
        {"model": "claude-sonnet-4-6", "max_tokens": -3, "top_p": None, "temperature": [1]},
    ]
    every_criterion = {
        "name": "all",
        "match": {
            "tasks": ["extraction", "writing", "other"],
            "turns": {"max": 10},
            "metadata": {"user_id": "*"},
            "headers": {"x-app": "*"},
        },
        "set": {"max_tokens": 100},
    }
    for specs in [*AGGRESSIVE, [every_criterion]]:
        for sent in odd:
            facts = RequestFacts(sent, route="messages", tenant=None, headers={"x-app": "a"})
            target = Target.of("messages", facts.model, OLD)
            apply_policies(sent, matching(rules(*specs), facts), target)


def test_no_room_left_in_the_context_means_no_raise() -> None:
    full = body(messages=[{"role": "user", "content": "word " * 120_000}])
    out, report = run(full, {"set": {"max_tokens": 60_000}})
    assert out["max_tokens"] == 2048 and skipped(report) == {"max_tokens": "context"}
