"""Redaction end to end: a gateway in front of the simulator, which journals what reached it
and (echo mode) answers with the text it was sent, as a model repeating a value would."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import anthropic
import orjson
import pytest

from claude_proxy.pii import Detector, PiiSettings
from claude_proxy.server import RunningServer
from claude_proxy.sim import JOURNAL
from tests.api.test_metrics import scrape, total
from tests.conftest import StartGateway, StartSim
from tests.helpers import API_HEADERS, message_body
from tests.scripted import ScriptedUpstream, text_part
from tests.sse import parse_events

CARD = "4111 1111 1111 1111"
EMAIL = "zhang.wei@example.com"
SSN = "536-22-1844"
CN_ID = "11010519491231002X"
PHONE = "+86 138 1234 5678"
KEY = "sk-ant-api03-" + "Zx9" * 20
VALUES = (CARD, EMAIL, SSN, CN_ID, PHONE, KEY)
PROMPT = (
    f"客户张伟，卡号{CARD}，邮箱 {EMAIL}。SSN {SSN}, 身份证号{CN_ID}, "
    f"call {PHONE}. Our key is {KEY}. Order #4012888888881881 shipped on 2026-03-14."
)


def journal(sim: RunningServer) -> list[Any]:
    return [entry.body for entry in sim.runner.app[JOURNAL].entries]


def upstream_text(sim: RunningServer) -> str:
    return "\n".join(orjson.dumps(body).decode() for body in journal(sim))


async def _gateway(
    start_sim: StartSim, start_gateway: StartGateway, **pii: Any
) -> tuple[RunningServer, RunningServer]:
    sim = await start_sim(journal=20, echo=True)
    gateway = await start_gateway(sim.url, pii=PiiSettings(**pii))
    return sim, gateway


async def post(
    http: aiohttp.ClientSession, gateway: RunningServer, body: dict[str, Any], **headers: str
) -> tuple[int, bytes]:
    async with http.post(
        f"{gateway.url}/v1/messages", json=body, headers={**API_HEADERS, **headers}
    ) as r:
        return r.status, await r.read()


def every_kind_of_text(text: str) -> dict[str, Any]:
    """The value-bearing places of a request: system, string and block content, a tool's
    input and result, a document."""
    return message_body(
        text,
        system=[{"type": "text", "text": f"Support notes: {text}"}],
        messages=[
            {"role": "user", "content": [{"type": "text", "text": text}]},
            {
                "role": "assistant",
                "content": [
                    {"type": "tool_use", "id": "toolu_1", "name": "lookup",
                     "input": {"query": text, "nested": [{"card": CARD}]}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1",
                     "content": [{"type": "text", "text": f"found {EMAIL} / {SSN}"}]},
                    {"type": "document", "title": f"Letter to {EMAIL}",
                     "source": {"type": "text", "media_type": "text/plain", "data": text}},
                    {"type": "text", "text": text},
                ],
            },
        ],
    )  # fmt: skip


async def test_mask_leaves_no_value_upstream_in_any_place(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="mask")
    status, raw = await post(http, gateway, every_kind_of_text(PROMPT))
    assert status == 200, raw
    sent = upstream_text(sim)
    for value in VALUES:
        assert value not in sent
        assert value.replace(" ", "") not in sent
    for entity in ("CREDIT_CARD", "EMAIL", "US_SSN", "CN_ID", "PHONE", "SECRET"):
        assert f"[{entity}]" in sent
    # Hard negatives stay: an order number and a date are not sensitive.
    assert "Order #4012888888881881" in sent and "2026-03-14" in sent
    # Echo: the client reads back what the model was sent, masked.
    text = orjson.loads(raw)["content"][0]["text"]
    assert "[CREDIT_CARD]" in text and CARD not in text


async def test_pseudonyms_are_restored_in_json_and_stable_across_turns(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    prompt = f"Email {EMAIL} twice: {EMAIL.upper()}; card {CARD} and {CARD.replace(' ', '-')}."
    status, raw = await post(http, gateway, message_body(prompt))
    assert status == 200, raw
    first = journal(sim)[-1]["messages"][0]["content"]
    assert first == "Email <EMAIL_1> twice: <EMAIL_1>; card <CREDIT_CARD_1> and <CREDIT_CARD_1>."
    answer = orjson.loads(raw)["content"][0]["text"]
    # A value comes back as first written (one pseudonym stands for both spellings).
    assert answer == f"Email {EMAIL} twice: {EMAIL}; card {CARD} and {CARD}."
    # The next turn sends the history again, with a new value: old ones keep their names.
    history = [
        {"role": "user", "content": prompt},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": f"And {SSN}, and {EMAIL} again, and bob@example.org."},
    ]
    status, raw = await post(http, gateway, message_body(messages=history))
    assert status == 200
    sent = journal(sim)[-1]["messages"]
    assert sent[0]["content"] == first
    assert sent[2]["content"] == "And <US_SSN_1>, and <EMAIL_1> again, and <EMAIL_2>."
    assert orjson.loads(raw)["content"][0]["text"] == history[2]["content"]


async def test_pseudonyms_are_restored_in_streams_through_the_sdk_and_on_resume(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    client = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key")
    async with client.messages.stream(
        model="claude-haiku-4-5", max_tokens=1024, messages=[{"role": "user", "content": PROMPT}]
    ) as stream:
        text = "".join([piece async for piece in stream.text_stream])
        final = await stream.get_final_message()
    assert text == PROMPT  # the model echoed placeholders; the client reads its own values
    assert final.content[0].text == PROMPT  # type: ignore[union-attr]
    sent = upstream_text(sim)
    assert all(value not in sent for value in VALUES)
    assert "<CREDIT_CARD_1>" in sent and "<SECRET_1>" in sent
    # A resumed stream replays the restored text, not the placeholders.
    async with http.post(
        f"{gateway.url}/v1/messages",
        json=message_body(PROMPT, stream=True, max_tokens=1024),
        headers=API_HEADERS,
    ) as r:
        stream_id = r.headers["x-proxy-stream-id"]
        await r.read()
    async with http.get(
        f"{gateway.url}/v1/streams/{stream_id}",
        headers={**API_HEADERS, "last-event-id": f"{stream_id}:0"},
    ) as r:
        replayed = parse_events(await r.read())
    deltas = [data["delta"]["text"] for name, data in replayed if name == "content_block_delta"]
    assert "".join(deltas) == PROMPT


async def test_block_refuses_naming_types_never_values(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(
        start_sim, start_gateway, mode="mask", entity_modes={"SECRET": "block", "US_SSN": "block"}
    )
    status, raw = await post(http, gateway, message_body(PROMPT))
    assert status == 400
    error = orjson.loads(raw)["error"]
    assert error["type"] == "invalid_request_error"
    assert "SECRET" in error["message"] and "US_SSN" in error["message"]
    assert all(value not in raw.decode() for value in VALUES)
    assert journal(sim) == []  # nothing reached the upstream
    # Without the blocked types the same gateway masks and sends.
    status, _ = await post(http, gateway, message_body(f"mail {EMAIL}"))
    assert status == 200 and "[EMAIL]" in upstream_text(sim)


async def test_detect_counts_and_sends_the_values_untouched(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="detect")
    body = orjson.dumps(message_body(PROMPT))
    async with http.post(f"{gateway.url}/v1/messages", data=body, headers=API_HEADERS) as r:
        assert r.status == 200
    assert orjson.loads(sim.runner.app[JOURNAL].entries[-1].raw) == orjson.loads(body)
    _, series = await scrape(http, gateway)
    counted = "api_redactions_total"
    assert total(series, counted, entity="credit_card", action="detect") == 1
    assert total(series, counted, entity="email", action="detect") == 1
    assert total(series, counted, entity="secret", action="detect") == 1
    text, _ = await scrape(http, gateway)
    assert all(value not in text for value in VALUES)


async def test_fails_closed_when_the_text_cannot_be_checked(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="mask", max_scan_chars=1000)
    status, raw = await post(http, gateway, message_body(PROMPT * 20))
    assert status == 413  # not 500: SDKs retry those, and it would fail again
    assert orjson.loads(raw)["error"]["type"] == "request_too_large"
    assert "not sent" in orjson.loads(raw)["error"]["message"]
    assert journal(sim) == []
    status, _ = await post(http, gateway, message_body(PROMPT))  # and it keeps serving
    assert status == 200


async def test_tenants_override_the_gateway_policy(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim = await start_sim(journal=20, echo=True)
    gateway = await start_gateway(
        sim.url,
        pii=PiiSettings(mode="mask"),
        tenants=[
            {"name": "strict", "keys": ["key-strict"], "pii": {"mode": "block"}},
            {"name": "lab", "keys": ["key-lab"], "pii": {"mode": "off"}},
            {"name": "plain", "keys": ["key-plain"]},
        ],
    )
    prompt = f"write to {EMAIL}"
    assert (await post(http, gateway, message_body(prompt), **{"x-api-key": "key-strict"}))[
        0
    ] == 400
    assert (await post(http, gateway, message_body(prompt), **{"x-api-key": "key-lab"}))[0] == 200
    assert journal(sim)[-1]["messages"][0]["content"] == prompt
    assert (await post(http, gateway, message_body(prompt), **{"x-api-key": "key-plain"}))[0] == 200
    assert journal(sim)[-1]["messages"][0]["content"] == "write to [EMAIL]"


async def test_count_tokens_is_redacted_too(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    async with http.post(
        f"{gateway.url}/v1/messages/count_tokens",
        json={"model": "claude-haiku-4-5", "messages": [{"role": "user", "content": PROMPT}]},
        headers=API_HEADERS,
    ) as r:
        assert r.status == 200
    assert all(value not in upstream_text(sim) for value in VALUES)


async def test_scan_responses_masks_values_the_model_wrote(
    start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    # The model writes values it was never sent, in pieces, with the words that give them
    # away in earlier deltas; an email is only counted (detect) and stays.
    pieces = [
        "My SSN is 5362",
        "21844, IBAN DE89 3704 0044 0532 01",
        "30 00; call +44 20 ",
        "7946 0958. Order #4012888888881881 is fine; mail bob@exam",
        "ple.com. Bye",
    ]
    expected = (
        "My SSN is [US_SSN], IBAN [IBAN]; call [PHONE]. Order #4012888888881881 is fine; "
        "mail bob@example.com. Bye"
    )
    script = ScriptedUpstream(text_part(*pieces), text_part("".join(pieces)))
    gateway = await start_gateway(
        await script.start(),
        pii=PiiSettings(mode="mask", entity_modes={"EMAIL": "detect"}, scan_responses=True),
    )
    try:
        status, raw = await post(http, gateway, message_body("hello", stream=True))
        assert status == 200
        events = parse_events(raw)
        text = "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta")
        assert text == expected
        assert [n for n, _ in events][-3:] == [
            "content_block_stop",
            "message_delta",
            "message_stop",
        ]
        # The same answer in one delta: masked the same.
        status, raw = await post(http, gateway, message_body("hello", stream=True))
        events = parse_events(raw)
        assert (
            "".join(d["delta"]["text"] for n, d in events if n == "content_block_delta") == expected
        )
    finally:
        await script.stop()


async def test_values_never_reach_logs(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    request_log: list[dict[str, Any]],
) -> None:
    caplog.set_level(logging.DEBUG)
    _, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    for stream in (False, True):
        await post(http, gateway, message_body(PROMPT, stream=stream))
    await post(http, gateway, message_body(PROMPT * 200))
    await asyncio.sleep(0)
    logged = caplog.text + repr(request_log)
    assert all(value not in logged for value in VALUES)


async def test_a_batch_is_redacted_request_by_request(
    start_sim: StartSim, start_gateway: StartGateway
) -> None:
    # Pseudonymize masks in a batch: its results come back later, by batch id, with
    # nothing here to restore them. The simulator echoes, so the results show what it got.
    _, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0)
    params = {"model": "claude-haiku-4-5", "max_tokens": 400}
    batch = await sdk.messages.batches.create(
        requests=[
            {
                "custom_id": "a",
                "params": {**params, "messages": [{"role": "user", "content": PROMPT}]},
            },
            {
                "custom_id": "b",
                "params": {**params, "messages": [{"role": "user", "content": "hi"}]},
            },
        ]
    )  # type: ignore[list-item]
    async with asyncio.timeout(10):
        while (await sdk.messages.batches.retrieve(batch.id)).processing_status != "ended":
            await asyncio.sleep(0.01)
    results = {r.custom_id: r.result async for r in await sdk.messages.batches.results(batch.id)}
    first = results["a"].message.content[0].text  # type: ignore[union-attr]
    assert all(value not in first for value in VALUES)
    assert "[CREDIT_CARD]" in first and "[EMAIL]" in first
    assert results["b"].message.content[0].text == "hi"  # type: ignore[union-attr]
    await sdk.close()


async def test_a_key_sent_twice_cannot_carry_a_value_past_the_scan(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="mask")
    block = b'{"type":"text","text":"card 4111 1111 1111 1111","text":"hi"}'
    raw = (
        b'{"model":"claude-haiku-4-5","max_tokens":50,"messages":[{"role":"user","content":['
        + block
        + b"]}]}"
    )
    async with http.post(f"{gateway.url}/v1/messages", data=raw, headers=API_HEADERS) as r:
        await r.read()
    assert b"4111" not in sim.runner.app[JOURNAL].entries[-1].raw


async def test_a_placeholder_the_client_wrote_is_never_a_values_name(
    start_sim: StartSim, start_gateway: StartGateway, http: aiohttp.ClientSession
) -> None:
    sim, gateway = await _gateway(start_sim, start_gateway, mode="pseudonymize")
    prompt = f"Templates use <EMAIL_1> as the merge field; send it to {EMAIL}."
    status, raw = await post(http, gateway, message_body(prompt))
    assert status == 200
    assert journal(sim)[-1]["messages"][0]["content"] == (
        "Templates use <EMAIL_1> as the merge field; send it to <EMAIL_2>."
    )
    assert orjson.loads(raw)["content"][0]["text"] == prompt  # <EMAIL_1> stays itself


async def test_a_detector_that_fails_refuses_the_request(
    start_sim: StartSim,
    start_gateway: StartGateway,
    http: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Fault injection: the detectors have no input that makes them fail on purpose.
    def broken(self: Detector, text: str) -> list[Any]:
        raise RuntimeError(f"detector bug near {text[:20]}")

    sim, gateway = await _gateway(start_sim, start_gateway, mode="mask")
    monkeypatch.setattr(Detector, "find", broken)
    status, raw = await post(http, gateway, message_body(PROMPT))
    assert status == 500 and orjson.loads(raw)["error"]["type"] == "api_error"
    assert all(value not in raw.decode() for value in VALUES)
    assert journal(sim) == []  # failed closed: nothing was sent
