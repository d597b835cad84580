"""``policies:`` mistakes are refused at start-up, each with its line and a clear reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from claude_proxy.config import ConfigError, load_settings

HEAD = """tenants:
  - {name: acme, keys: [sk-acme]}
upstreams:
  - {name: a, api_key: sk-up}
policies:
"""


def problems(tmp_path: Path, rules: str, head: str = HEAD) -> str:
    path = tmp_path / "gateway.yaml"
    path.write_text(head + rules)
    with pytest.raises(ConfigError) as info:
        load_settings(path, env={})
    return str(info.value)


def test_every_rule_mistake_is_reported_in_one_run(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        """  - name: cold
    match: {models: ["claude-[sonnet-*"]}
    set: {temprature: 0}
  - name: long
    clamp: {max_tokens: {min: 2000, max: 1000}}
  - name: both
    set: {temperature: 0.2}
    clamp: {temperature: {max: 0.5}}
  - name: loud
    clamp: {effort: {min: max, max: low}}
  - name: hot
    set: {temperature: 1.5, thinking_budget: 512}
  - name: peek
    match: {headers: {X-Api-Key: "sk-*"}}
    default: {effort: turbo}
  - name: idle
    match: {tasks: [poetry], turns: {min: 3, max: 2}}
  - name: "bad name"
    set: {max_tokens: 10}
""",
    )
    expected = [
        "line 7: policies.0.match.models: Value error, bad glob 'claude-[sonnet-*': "
        "'[' without its ']'",
        "line 8: policies.0.set.temprature: unknown setting; did you mean 'temperature'?",
        "line 10: policies.1.clamp.max_tokens: Value error, min (2000) is above max (1000)",
        "policies.2: Value error, policy 'both': temperature is in set and in default/clamp",
        "policies.3.clamp.effort: Value error, min (max) is above max (low)",
        "policies.4.set.temperature: Input should be less than or equal to 1",
        "policies.4.set.thinking_budget: Input should be greater than or equal to 1024",
        "policies.5.match.headers: Value error, rules do not match on 'X-Api-Key' (a credential)",
        "policies.5.default.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max'",
        "policies.6.match.tasks.0: Input should be 'extraction', 'writing' or 'other'",
        "policies.6.match.turns: Value error, min (3) is above max (2)",
        "policies.7.name: Value error, a policy name is 1-64 letters",
    ]
    for line in expected:
        assert line in message, line


def test_tenants_and_names_are_checked_against_the_rest(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        """  - name: ghost
    match: {tenants: nobody}
    set: {effort: low}
  - name: ghost
    default: {max_tokens: 100}
""",
    )
    assert "line 6: policies: Value error, policy 'ghost' names unknown tenants ['nobody']" in (
        message
    )
    assert "policy name 'ghost' is used twice" in message


def test_rules_that_contradict_themselves_or_do_nothing(tmp_path: Path) -> None:
    message = problems(
        tmp_path,
        "  - name: d\n    default: {max_tokens: 100}\n    clamp: {max_tokens: {max: 50}}\n"
        "  - name: idle\n    match: {tasks: writing}\n",
    )
    assert "policy 'd': default max_tokens 100 is outside its clamp" in message
    assert "policy 'idle' changes nothing: give set, default or clamp" in message


def test_a_gateway_without_tenants_has_the_default_one(tmp_path: Path) -> None:
    rules = "policies:\n  - {name: open, match: {tenants: default}, set: {max_tokens: 100}}\n"
    path = tmp_path / "gateway.yaml"
    path.write_text(rules)
    settings = load_settings(path, env={})
    assert settings.policies[0].match.tenants == ["default"]
    rule = "  - {name: x, match: {tenants: acme}, set: {max_tokens: 1}}\n"
    message = problems(tmp_path, rule, head="policies:\n")
    assert "names unknown tenants ['acme'] (configured: ['default'])" in message


def test_the_readme_example_is_valid(tmp_path: Path) -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Generation policies", 1)[1]
    example = re.search(r"```yaml\n(.*?)```", section, re.S)
    assert example is not None
    path = tmp_path / "gateway.yaml"
    path.write_text(
        "tenants:\n  - {name: support, keys: [sk-s]}\nupstreams:\n  - {api_key: sk-u}\n"
        + example.group(1)
    )
    settings = load_settings(path, env={})
    assert [rule.name for rule in settings.policies] == [
        "extraction-cold",
        "long-chats",
        "invoicing-app",
    ]
