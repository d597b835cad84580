"""Generation policies end to end: a gateway in front of the simulator, which journals what
reached it; the client sees ``x-proxy-policy`` and ``/metrics`` counts what was applied."""

from __future__ import annotations

from typing import Any

import aiohttp
import anthropic
import orjson

from claude_proxy.config import Settings
from claude_proxy.pii import PiiSettings
from claude_proxy.pipeline.call import Route
from claude_proxy.policies import PolicyRule
from claude_proxy.server import RunningServer
from claude_proxy.sessions import SessionSettings
from claude_proxy.sim import JOURNAL
from claude_proxy.sim.validation import NEW_VERSION
from claude_proxy.tenancy import TenantSettings
from tests.api.test_metrics import scrape, total
from tests.api.test_websocket import collect, request_frame
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.pipeline.test_build import pipeline
from tests.policies.test_property import AGGRESSIVE
from tests.sse import parse_events

INVOICE = "Extract the vendor and the total as JSON: Acme GmbH, 3 x 18.50 EUR."
RULES = [
    {
        "name": "extraction-cold",
        "match": {"tasks": "extraction"},
        "set": {"temperature": 0.0},
        "clamp": {"max_tokens": {"max": 1024}},
    },
    {"name": "later-turns", "match": {"turns": {"min": 2}}, "set": {"max_tokens": 64}},
    {
        "name": "invoicing-app",
        "match": {"headers": {"x-client-app": "invoices-*"}},
        "default": {"top_p": 0.9},
    },
]


def policies(*rules: dict[str, Any]) -> list[PolicyRule]:
    return [PolicyRule.model_validate(rule) for rule in rules]


def upstream(sim: RunningServer) -> list[Any]:
    return [entry.body for entry in sim.runner.app[JOURNAL].entries]


async def post(
    http: aiohttp.ClientSession, url: str, body: dict[str, Any], **headers: str
) -> tuple[int, bytes, Any]:
    async with http.post(f"{url}/v1/messages", json=body, headers={**API_HEADERS, **headers}) as r:
        return r.status, await r.read(), r.headers


async def _pair(
    start_sim: StartSim, start_gateway: StartGateway, rules: list[dict[str, Any]], **fields: Any
) -> tuple[RunningServer, RunningServer]:
    sim = await start_sim(journal=50)
    gateway = await start_gateway(sim.url, policies=policies(*rules), **fields)
    return sim, gateway


async def test_applied_values_reach_the_upstream_and_the_header_and_metrics(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _pair(start_sim, start_gateway, RULES)
    status, raw, headers = await post(http, gateway.url, message_body(INVOICE, max_tokens=4000))
    assert status == 200, raw
    assert headers["x-proxy-policy"] == (
        "extraction-cold; max_tokens=1024 (clamped); temperature=0 (set)"
    )
    sent = upstream(sim)[-1]
    assert (sent["max_tokens"], sent["temperature"]) == (1024, 0.0)
    # Streamed answers carry the header too; a header rule adds its default.
    body = message_body(INVOICE, stream=True, max_tokens=300, temperature=0.5)
    status, raw, headers = await post(http, gateway.url, body, **{"x-client-app": "invoices-eu"})
    assert status == 200 and parse_events(raw)[-1][0] == "message_stop"
    assert headers["x-proxy-policy"] == (
        "extraction-cold; temperature=0 (set), invoicing-app; top_p skipped (exclusive)"
    )
    assert "top_p" not in upstream(sim)[-1]
    _, series = await scrape(http, gateway)
    applied = "api_policy_applied_total"
    assert (
        total(series, applied, policy="extraction-cold", parameter="temperature", action="set") == 2
    )
    assert total(series, applied, policy="extraction-cold", parameter="max_tokens") == 1
    skipped = "api_policy_skipped_total"
    assert (
        total(series, skipped, policy="invoicing-app", parameter="top_p", reason="exclusive") == 1
    )


async def test_a_request_no_rule_changes_goes_up_byte_for_byte(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _pair(start_sim, start_gateway, RULES)
    raw_body = (
        b'{"model":"claude-haiku-4-5", "max_tokens": 200,\n'
        b' "messages":[{"role":"user","content":"Hi there"}]}'
    )
    async with http.post(f"{gateway.url}/v1/messages", data=raw_body, headers=API_HEADERS) as r:
        assert r.status == 200 and "x-proxy-policy" not in r.headers
    assert sim.runner.app[JOURNAL].entries[-1].raw == raw_body
    # Matched but within bounds: named in the header, the bytes still untouched.
    extraction = raw_body.replace(b"Hi there", b"Classify this: spam?").replace(b"200", b"10")
    extraction = extraction[:-1] + b', "temperature": 0}'
    async with http.post(f"{gateway.url}/v1/messages", data=extraction, headers=API_HEADERS) as r:
        assert r.status == 200 and r.headers["x-proxy-policy"] == "extraction-cold"
    assert sim.runner.app[JOURNAL].entries[-1].raw == extraction


async def test_the_sdk_on_the_new_version_gets_no_sampling_but_its_other_values(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    rules = [{"name": "agents", "set": {"temperature": 0.2, "effort": "low", "max_tokens": 2000}}]
    sim, gateway = await _pair(start_sim, start_gateway, rules)
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0)
    async with client:
        raw = await client.messages.with_raw_response.create(
            model="claude-opus-4-7",
            max_tokens=16000,
            messages=[{"role": "user", "content": "Plan a migration of our billing service."}],
        )
    assert raw.http_response.status_code == 200 and (await raw.parse()).content
    assert raw.headers["x-proxy-policy"] == (
        "agents; max_tokens=2000 (set); effort=low (set); temperature skipped (version)"
    )
    sent = upstream(sim)[-1]
    assert sent["max_tokens"] == 2000 and sent["output_config"] == {"effort": "low"}
    assert "temperature" not in sent


async def test_turn_numbers_with_and_without_sessions(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _pair(
        start_sim, start_gateway, RULES, sessions=SessionSettings(url="memory://")
    )
    first = message_body("My name is Ada.", max_tokens=300)
    status, _, headers = await post(http, gateway.url, first, **{"x-session-id": "s1"})
    assert status == 200 and "x-proxy-policy" not in headers
    # The second turn sends only itself; the stored history makes it turn 2.
    second = message_body("What is my name?", max_tokens=300)
    status, _, headers = await post(http, gateway.url, second, **{"x-session-id": "s1"})
    assert status == 200 and headers["x-proxy-policy"] == "later-turns; max_tokens=64 (set)"
    sent = upstream(sim)[-1]
    assert len(sent["messages"]) == 3 and sent["max_tokens"] == 64
    # Without a session, the turns the client sends count.
    status, _, headers = await post(http, gateway.url, second)
    assert status == 200 and "x-proxy-policy" not in headers
    whole = message_body(max_tokens=300)
    whole["messages"] = [*sent["messages"][:2], {"role": "user", "content": "What is my name?"}]
    status, _, headers = await post(http, gateway.url, whole)
    assert status == 200 and headers["x-proxy-policy"] == "later-turns; max_tokens=64 (set)"


async def test_rules_per_tenant(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    tenants = [
        TenantSettings(name="acme", keys=["sk-acme"]),
        TenantSettings(name="globex", keys=["sk-globex"]),
    ]
    rules = [
        {"name": "acme-short", "match": {"tenants": "acme"}, "clamp": {"max_tokens": {"max": 50}}}
    ]
    sim, gateway = await _pair(start_sim, start_gateway, rules, tenants=tenants)
    for key, expected in (("sk-acme", 50), ("sk-globex", 256)):
        status, _, _ = await post(http, gateway.url, message_body(), **{"x-api-key": key})
        assert status == 200 and upstream(sim)[-1]["max_tokens"] == expected


async def test_a_document_request_gets_its_max_tokens(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    rules = [
        {
            "name": "short-docs",
            "match": {"routes": "documents"},
            "clamp": {"max_tokens": {"max": 40}},
        }
    ]
    sim, gateway = await _pair(start_sim, start_gateway, rules)
    body = {
        "model": "claude-haiku-4-5",
        "document": "The sky is blue. " * 50,
        "instruction": "Summarise.",
    }
    async with http.post(f"{gateway.url}/v1/documents", json=body, headers={"x-api-key": "k"}) as r:
        assert r.status == 200, await r.text()
        assert r.headers["x-proxy-policy"] == "short-docs; max_tokens=40 (clamped)"
    assert {sent["max_tokens"] for sent in upstream(sim)} == {40}


async def test_aggressive_policies_on_the_newest_and_oldest_models_both_versions(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """The property of tests/policies/test_property.py, over the wire, for a handful."""
    sim = await start_sim(journal=50)
    requests = [
        message_body(INVOICE, model="claude-sonnet-4-5", temperature=0.4),
        message_body(
            INVOICE,
            model="claude-opus-4-6",
            max_tokens=4096,
            thinking={"type": "enabled", "budget_tokens": 2048},
        ),
        message_body(
            INVOICE, model="claude-opus-4-8", max_tokens=2000, thinking={"type": "adaptive"}
        ),
        message_body("Write a haiku.", model="claude-haiku-4-5", max_tokens=64_000),
    ]
    for rules in AGGRESSIVE:
        gateway = await start_gateway(sim.url, policies=policies(*rules))
        for version in ("2023-06-01", NEW_VERSION):
            for body in requests:
                if version == NEW_VERSION:
                    body = {k: v for k, v in body.items() if k != "temperature"}
                status, raw, headers = await post(
                    http, gateway.url, body, **{"anthropic-version": version}
                )
                assert status == 200, (
                    rules[0]["name"],
                    version,
                    body,
                    raw,
                    headers.get("x-proxy-policy"),
                )
                assert headers.get("x-proxy-policy"), (rules, body)
    assert orjson.dumps(upstream(sim))  # what went up was journalled (and JSON)


def test_the_stage_sits_before_redaction_and_only_when_there_are_rules() -> None:
    settings = Settings(pii=PiiSettings(mode="mask"), policies=policies(*RULES))
    chains = pipeline(settings)
    names = chains.chain(Route.MESSAGES).names
    assert names[names.index("continuations") :][:3] == ["continuations", "policies", "redaction"]
    assert "policies" in chains.chain(Route.DOCUMENTS).names
    assert "policies" not in chains.chain(Route.COUNT_TOKENS).names
    assert "policies" not in pipeline(Settings()).chain(Route.MESSAGES).names


async def test_requests_on_the_websocket_get_the_rules(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _pair(start_sim, start_gateway, RULES)
    async with http.ws_connect(f"{gateway.url}/v1/ws", headers=API_HEADERS) as ws:
        await ws.send_str(request_frame(1, message_body(INVOICE, max_tokens=4000)))
        frames = await collect(ws, {1})
    assert frames[1][-1]["event"]["type"] == "message_stop"
    sent = upstream(sim)[-1]
    assert (sent["max_tokens"], sent["temperature"]) == (1024, 0.0)


async def test_a_raise_of_max_tokens_stops_where_a_call_that_does_not_stream_can_go(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    """A JSON call asking 128,000 tokens would run past the 10 minutes the SDKs allow
    and the gateway's attempt timeout: a raise stops at 21,333 (fitted); a stream gets
    the model's ceiling."""
    big = {"name": "big", "set": {"max_tokens": 128_000}}
    sim, gateway = await _pair(start_sim, start_gateway, [big])
    ask = message_body("Hello", model="claude-sonnet-4-6", max_tokens=1000)
    status, raw, headers = await post(http, gateway.url, ask)
    assert status == 200, raw
    assert headers["x-proxy-policy"] == "big; max_tokens=21333 (fitted, non-streaming)"
    assert upstream(sim)[-1]["max_tokens"] == 21_333
    status, raw, headers = await post(http, gateway.url, {**ask, "stream": True})
    assert status == 200, raw
    assert headers["x-proxy-policy"] == "big; max_tokens=128000 (set)"
    assert upstream(sim)[-1]["max_tokens"] == 128_000
