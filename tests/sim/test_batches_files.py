"""The simulator's Message Batches and Files: what the API refuses, it refuses."""

from __future__ import annotations

import aiohttp
import anthropic
import pytest

from .conftest import MODEL, Sim, body, headers


async def post_batch(http: aiohttp.ClientSession, sim: Sim, payload: object) -> tuple[int, dict]:
    async with http.post(f"{sim.url}/v1/messages/batches", json=payload, headers=headers()) as r:
        return r.status, await r.json()


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"requests": []}, "requests: Input should be a non-empty list"),
        ({"requests": [{"custom_id": "a"}]}, "requests.0.params: Field required"),
        (
            {"requests": [{"custom_id": "a", "params": body()}] * 2},
            "requests.1.custom_id: 'a' is used twice",
        ),
        ({"requests": [{"custom_id": "x" * 65, "params": body()}]}, "1 to 64 characters"),
    ],
)
async def test_a_malformed_batch_is_refused(
    sim: Sim, http: aiohttp.ClientSession, payload: object, message: str
) -> None:
    status, answer = await post_batch(http, sim, payload)
    assert status == 400
    assert answer["error"]["type"] == "invalid_request_error"
    assert message in answer["error"]["message"]


async def test_results_wait_for_the_end_and_streaming_params_are_errored(
    sim: Sim, http: aiohttp.ClientSession, client: anthropic.AsyncAnthropic
) -> None:
    batch = await client.messages.batches.create(
        requests=[
            {"custom_id": "held", "params": body()},
            {"custom_id": "streamed", "params": body(stream=True)},
        ],
        extra_headers={"x-sim-batch-seconds": "60"},
    )
    assert batch.results_url is None
    url = f"{sim.url}/v1/messages/batches/{batch.id}/results"
    async with http.get(url, headers=headers()) as r:
        assert r.status == 400
        assert "has not finished" in (await r.json())["error"]["message"]
    with pytest.raises(anthropic.BadRequestError, match="still processing"):
        await client.messages.batches.delete(batch.id)
    await client.messages.batches.cancel(batch.id)
    assert sim.state.batches.get(batch.id).task is not None
    await sim.state.batches.get(batch.id).task  # type: ignore[misc]
    results = {r.custom_id: r.result async for r in await client.messages.batches.results(batch.id)}
    assert results["held"].type == "succeeded"  # the first ran before the cancel
    assert results["streamed"].type == "canceled"


async def test_files_and_batches_are_listed_newest_first_a_page_at_a_time(
    client: anthropic.AsyncAnthropic,
) -> None:
    ids = [
        (await client.beta.files.upload(file=(f"f{i}.txt", b"x", "text/plain"))).id
        for i in range(5)
    ]
    page = await client.beta.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_next_page()
    listed = [f.id async for f in await client.beta.files.list(limit=2)]  # page after page
    assert listed == ids[::-1]
    batches = [
        (await client.messages.batches.create(requests=[{"custom_id": "a", "params": body()}])).id
        for _ in range(3)
    ]
    older = await client.messages.batches.list(limit=2, after_id=batches[1])
    assert [b.id for b in older.data] == batches[:1] and not older.has_more
    with pytest.raises(anthropic.NotFoundError):
        await client.beta.files.retrieve_metadata("file_011Cmissing")


async def test_a_message_naming_an_unknown_file_is_refused(
    client: anthropic.AsyncAnthropic,
) -> None:
    document = {"type": "document", "source": {"type": "file", "file_id": "file_011Cmissing"}}
    with pytest.raises(anthropic.BadRequestError, match="File not found: file_011Cmissing"):
        await client.messages.create(
            model=MODEL, max_tokens=10, messages=[{"role": "user", "content": [document]}]
        )
    # Like every validation error, before any injected fault: a 500 would hide it.
    with pytest.raises(anthropic.BadRequestError, match="File not found: file_011Cmissing"):
        await client.messages.create(
            model=MODEL,
            max_tokens=10,
            messages=[{"role": "user", "content": [document]}],
            extra_headers={"x-sim-fault": "500"},
        )
