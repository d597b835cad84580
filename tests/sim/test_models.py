"""GET /v1/models, model lookup, retired models and unknown paths."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest
from aiohttp import web

from claude_proxy.sim import SimSettings, create_sim_app
from claude_proxy.sim.models import CATALOGUE, active_models, lookup_model

from .conftest import Sim, body, headers


async def test_sdk_lists_active_models_newest_first(client: anthropic.AsyncAnthropic) -> None:
    page = await client.models.list()
    ids = [m.id for m in page.data]
    assert "claude-sonnet-4-6" in ids
    assert "claude-3-5-sonnet-20241022" not in ids  # retired
    created = [m.created_at for m in page.data]
    assert created == sorted(created, reverse=True)


async def test_list_shape(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.url}/v1/models", headers=headers()) as resp:
        data = await resp.json()
        assert resp.headers["request-id"].startswith("req_")
    assert data["has_more"] is False
    assert data["first_id"] == data["data"][0]["id"]
    assert data["last_id"] == data["data"][-1]["id"]
    assert set(data["data"][0]) == {
        "type",
        "id",
        "display_name",
        "created_at",
        "max_input_tokens",
        "max_tokens",
    }


async def test_retrieve_by_alias_gives_dated_id(client: anthropic.AsyncAnthropic) -> None:
    model = await client.models.retrieve("claude-haiku-4-5")
    assert model.id == "claude-haiku-4-5-20251001"
    assert model.max_tokens == 64000


async def test_retrieve_retired_is_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.models.retrieve("claude-3-7-sonnet-20250219")


async def test_messages_with_retired_model_is_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError) as info:
        await client.messages.create(**body(model="claude-3-5-haiku-20241022"))
    assert "model: claude-3-5-haiku-20241022" in str(info.value)


async def test_unknown_model_is_404(client: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await client.messages.create(**body(model="claude-imaginary-9"))


async def test_unknown_path_is_anthropic_404(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.post(f"{sim.url}/v1/nothing", headers=headers()) as resp:
        assert resp.status == 404
        assert resp.headers["request-id"].startswith("req_011C")
        data = await resp.json()
    assert data["type"] == "error"
    assert data["error"]["type"] == "not_found_error"
    assert data["request_id"] == resp.headers["request-id"]


def test_catalogue_rules() -> None:
    assert lookup_model("claude-opus-4-0") is lookup_model("claude-opus-4-20250514")
    opus47 = CATALOGUE["claude-opus-4-7"]
    assert not opus47.accepts_prefill
    assert not opus47.accepts_sampling
    assert CATALOGUE["claude-sonnet-4-5"].accepts_prefill
    assert CATALOGUE["claude-opus-5"].min_cacheable_tokens == 512
    assert all(not m.retired for m in active_models())


async def test_wrong_method_is_anthropic_error(sim: Sim, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{sim.url}/v1/messages", headers=headers()) as resp:
        assert resp.status == 405
        assert (await resp.json())["error"]["type"] == "invalid_request_error"
        assert resp.headers["request-id"].startswith("req_")


async def test_body_over_limit_is_413(http: aiohttp.ClientSession) -> None:
    app = create_sim_app(SimSettings(speed=0), max_body_bytes=1000)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        url = f"http://127.0.0.1:{runner.addresses[0][1]}/v1/messages"
        async with http.post(url, headers=headers(), json=body("x" * 5000)) as resp:
            assert resp.status == 413
            assert (await resp.json())["error"]["type"] == "request_too_large"
    finally:
        await runner.cleanup()
