"""Rules match on tenant, model glob, route, metadata, headers, task and turn, all at once."""

from __future__ import annotations

from typing import Any

import pytest
from multidict import CIMultiDict

from claude_proxy.policies import PolicyRule, RequestFacts, matching
from claude_proxy.policies.settings import PolicyRoute


def rule(name: str = "r", **match: Any) -> PolicyRule:
    return PolicyRule.model_validate({"name": name, "match": match, "set": {"max_tokens": 100}})


def facts(
    text: str = "What is the capital of Peru?",
    *,
    model: str = "claude-sonnet-4-5-20250929",
    tenant: str | None = "acme",
    route: PolicyRoute = "messages",
    headers: dict[str, str] | None = None,
    turns: int = 1,
    **fields: Any,
) -> RequestFacts:
    messages: list[dict[str, Any]] = []
    for i in range(turns - 1):
        messages += [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": "a"}]
    messages.append({"role": "user", "content": text})
    body = {"model": model, "max_tokens": 256, "messages": messages, **fields}
    return RequestFacts(body, route=route, tenant=tenant, headers=CIMultiDict(headers or {}))


def matches(r: PolicyRule, f: RequestFacts) -> bool:
    return matching([r], f) == [r]


def test_an_empty_match_takes_every_request() -> None:
    assert matches(rule(), facts())
    assert matches(rule(), facts(model="anything", tenant=None, route="documents"))


@pytest.mark.parametrize(
    ("criteria", "yes", "no"),
    [
        ({"tenants": ["acme", "globex"]}, {"tenant": "globex"}, {"tenant": "initech"}),
        ({"models": ["claude-sonnet-4-*"]}, {}, {"model": "claude-opus-4-6"}),
        ({"models": "claude-[ho]*-4-5"}, {"model": "claude-haiku-4-5"}, {}),
        ({"routes": "documents"}, {"route": "documents"}, {}),
        ({"metadata": {"user_id": "batch-*"}}, {"metadata": {"user_id": "batch-7"}}, {}),
        (
            {"metadata": {"user_id": "batch-*"}},
            {"metadata": {"user_id": "batch-"}},
            {"metadata": {"user_id": 7}},
        ),
        (
            {"headers": {"X-Client-App": "invoices-*"}},
            {"headers": {"x-client-app": "invoices-eu"}},
            {"headers": {"x-client-app": "chat"}},
        ),
        ({"tasks": ["extraction"]}, {"text": "Extract the dates as JSON."}, {}),
        ({"tasks": "writing"}, {"text": "Write a poem about rain."}, {"text": "Hi"}),
        ({"tasks": "other"}, {}, {"text": "Write a poem about rain."}),
        ({"turns": {"min": 3}}, {"turns": 3}, {"turns": 2}),
        ({"turns": {"max": 1}}, {"turns": 1}, {"turns": 2}),
        ({"turns": {"min": 2, "max": 4}}, {"turns": 4}, {"turns": 5}),
    ],
)
def test_each_criterion(criteria: dict[str, Any], yes: dict[str, Any], no: dict[str, Any]) -> None:
    assert matches(rule(**criteria), facts(**yes))
    assert not matches(rule(**criteria), facts(**no))


def test_every_criterion_must_hold() -> None:
    both = rule(tenants="acme", tasks="extraction")
    assert matches(both, facts("Extract the names.", tenant="acme"))
    assert not matches(both, facts("Extract the names.", tenant="globex"))
    assert not matches(both, facts("Hello", tenant="acme"))


def test_a_model_glob_needs_a_model() -> None:
    f = RequestFacts({"messages": []}, route="messages", tenant=None, headers=CIMultiDict())
    assert not matches(rule(models="*"), f)


def test_rules_come_back_in_configuration_order() -> None:
    rules = [rule("c", tenants="acme"), rule("a"), rule("b", tenants="globex")]
    assert [r.name for r in matching(rules, facts())] == ["c", "a"]


def test_the_prompt_is_not_read_unless_a_matching_rule_asks() -> None:
    f = facts("Extract the names.", tenant="globex")
    matching([rule(tenants="acme", tasks="extraction")], f)
    assert "task" not in vars(f)  # the tenant ruled it out first
    matching([rule(tasks="extraction")], f)
    assert vars(f)["task"] == "extraction"


def test_a_document_request_is_one_turn_and_its_instruction_is_read() -> None:
    body = {"model": "claude-haiku-4-5", "document": "…", "instruction": "Classify each clause."}
    f = RequestFacts(body, route="documents", tenant=None, headers=CIMultiDict())
    assert (f.turn, f.task) == (1, "extraction")
