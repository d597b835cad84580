"""Message batches and files through the gateway, with the official Python SDK, against the
simulator: the gateway relays routes it does not handle itself, and points the SDK at
itself for batch results."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import anthropic
import pytest

from claude_proxy.server import RunningServer
from tests.conftest import StartGateway

MODEL = "claude-haiku-4-5"


@pytest.fixture
async def client(
    start_gateway: StartGateway, sim: RunningServer
) -> AsyncIterator[tuple[anthropic.AsyncAnthropic, RunningServer]]:
    gateway = await start_gateway(sim.url)
    # The client's key is not the simulator's: a call that went past the gateway fails.
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="client-key", max_retries=0)
    yield sdk, gateway
    await sdk.close()


def params(text: str) -> dict[str, object]:
    return {"model": MODEL, "max_tokens": 40, "messages": [{"role": "user", "content": text}]}


async def ended(
    sdk: anthropic.AsyncAnthropic, batch_id: str
) -> anthropic.types.messages.MessageBatch:
    async with asyncio.timeout(10):
        while (batch := await sdk.messages.batches.retrieve(batch_id)).processing_status != "ended":
            await asyncio.sleep(0.01)
    return batch


async def test_a_batch_is_created_listed_processed_and_its_results_read(
    client: tuple[anthropic.AsyncAnthropic, RunningServer],
) -> None:
    sdk, gateway = client
    batch = await sdk.messages.batches.create(
        requests=[
            {"custom_id": "first", "params": params("Hello there")},
            {"custom_id": "second", "params": params("Tell me about rivers")},
            {"custom_id": "broken", "params": {"model": MODEL, "messages": []}},
        ]
    )
    assert batch.id.startswith("msgbatch_") and batch.request_counts.processing == 3
    assert batch.id in [b.id async for b in sdk.messages.batches.list()]
    done = await ended(sdk, batch.id)
    counts = done.request_counts
    assert (counts.succeeded, counts.errored, counts.processing) == (2, 1, 0)
    assert done.results_url is not None and done.results_url.startswith(gateway.url)
    results = {r.custom_id: r.result async for r in await sdk.messages.batches.results(batch.id)}
    assert results["first"].type == "succeeded" and results["second"].type == "succeeded"
    assert results["first"].message.content[0].type == "text"
    assert results["first"].message.usage.output_tokens > 0
    assert results["broken"].type == "errored"
    assert results["broken"].error.error.type == "invalid_request_error"
    deleted = await sdk.messages.batches.delete(batch.id)
    assert deleted.type == "message_batch_deleted"
    with pytest.raises(anthropic.NotFoundError):
        await sdk.messages.batches.retrieve(batch.id)


async def test_a_batch_in_progress_is_cancelled(
    client: tuple[anthropic.AsyncAnthropic, RunningServer],
) -> None:
    sdk, _ = client
    batch = await sdk.messages.batches.create(
        requests=[{"custom_id": f"r{i}", "params": params("Hello")} for i in range(5)],
        extra_headers={"x-sim-batch-seconds": "60"},  # the simulator's pace: a minute
    )
    cancelling = await sdk.messages.batches.cancel(batch.id)
    assert cancelling.processing_status in ("canceling", "ended")
    counts = (await ended(sdk, batch.id)).request_counts
    assert counts.canceled >= 4 and counts.succeeded + counts.canceled == 5


async def test_a_file_is_uploaded_used_downloaded_and_deleted(
    client: tuple[anthropic.AsyncAnthropic, RunningServer],
) -> None:
    sdk, _ = client
    data = b"The river bends north past the old mill.\n" * 2000
    uploaded = await sdk.beta.files.upload(file=("notes.txt", data, "text/plain"))
    assert (uploaded.filename, uploaded.size_bytes) == ("notes.txt", len(data))
    assert uploaded.id in [f.id async for f in sdk.beta.files.list()]
    meta = await sdk.beta.files.retrieve_metadata(uploaded.id)
    assert meta.mime_type == "text/plain"
    downloaded = await sdk.beta.files.download(uploaded.id)
    assert await downloaded.read() == data
    document = {"type": "document", "source": {"type": "file", "file_id": uploaded.id}}
    question = {"type": "text", "text": "Where does the river bend?"}
    message = await sdk.beta.messages.create(
        model=MODEL,
        max_tokens=40,
        messages=[{"role": "user", "content": [document, question]}],
        betas=["files-api-2025-04-14"],
    )
    assert message.content[0].type == "text"
    await sdk.beta.files.delete(uploaded.id)
    with pytest.raises(anthropic.BadRequestError, match="File not found"):
        await sdk.beta.messages.create(
            model=MODEL,
            max_tokens=40,
            messages=[{"role": "user", "content": [document, question]}],
            betas=["files-api-2025-04-14"],
        )


async def test_a_batch_is_held_to_the_tenants_models(
    start_gateway: StartGateway, sim: RunningServer
) -> None:
    tenants = [{"name": "small", "keys": ["sk-small"], "models": ["claude-haiku-*"]}]
    gateway = await start_gateway(sim.url, tenants=tenants)
    sdk = anthropic.AsyncAnthropic(base_url=gateway.url, api_key="sk-small", max_retries=0)
    async with sdk:
        bigger = {**params("Hello"), "model": "claude-sonnet-4-6"}
        with pytest.raises(anthropic.PermissionDeniedError, match="claude-sonnet-4-6"):
            await sdk.messages.batches.create(
                requests=[
                    {"custom_id": "allowed", "params": params("Hello")},
                    {"custom_id": "not-allowed", "params": bigger},
                ]
            )
        # Nor under another spelling of the path, which the upstream URL would normalise.
        for path in (
            "/v1/messages/%62atches",
            "/v1/x/../messages/batches",
            "/v1//messages/batches/",
        ):
            with pytest.raises(anthropic.PermissionDeniedError, match="claude-sonnet-4-6"):
                await sdk.post(
                    path,
                    body={"requests": [{"custom_id": "not-allowed", "params": bigger}]},
                    cast_to=object,
                )
        # One params naming two models: checked as one, perhaps run as the other.
        twice = (
            b'{"requests":[{"custom_id":"a","params":{"model":"claude-haiku-4-5",'
            b'"max_tokens":10,"messages":[{"role":"user","content":"Hi"}],'
            b'"model":"claude-sonnet-4-6"}}]}'
        )
        with pytest.raises(anthropic.BadRequestError, match="'model' twice"):
            await sdk.post(
                "/v1/messages/batches",
                content=twice,
                cast_to=object,
                options={"headers": {"content-type": "application/json"}},
            )
        assert [b async for b in sdk.messages.batches.list()] == []  # nothing was sent
        batch = await sdk.messages.batches.create(
            requests=[{"custom_id": "allowed", "params": params("Hello")}]
        )
        assert (await ended(sdk, batch.id)).request_counts.succeeded == 1
