"""What aiohttp's parser rejects: answered in the API's error shape, logged once, quietly."""

from __future__ import annotations

import asyncio
import logging

import pytest

from claude_proxy.server import RunningServer
from tests.connections.conftest import StartGuarded
from tests.connections.raw import Answer, closed, connect, post_head, read_answer
from tests.helpers import API_HEADERS

CHUNKED = {**API_HEADERS, "Transfer-Encoding": "chunked"}
MALFORMED = [
    (b"GARBAGE\r\n\r\n", "Invalid method"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: v\r\n\r\n", "Invalid header token"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \x01\r\n\r\n", "Malformed HTTP request"),
    # Request smuggling: two framings for one body.
    (
        b"POST /v1/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "Transfer-Encoding can't be present with Content-Length",
    ),
]


async def send(gateway: RunningServer, raw: bytes) -> Answer:
    reader, writer = await connect(gateway)
    writer.write(raw)
    answer = await read_answer(reader)
    assert await closed(reader)
    writer.close()
    return answer


def warnings_and_worse(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.WARNING]


@pytest.mark.parametrize(("raw", "reason"), MALFORMED)
async def test_a_malformed_request_gets_a_json_400_and_one_warning_without_traceback(
    start_guarded: StartGuarded, caplog: pytest.LogCaptureFixture, raw: bytes, reason: str
) -> None:
    gateway = await start_guarded()
    caplog.set_level(logging.DEBUG)
    answer = await send(gateway, raw)
    assert answer.status == 400
    error = answer.error()
    assert error["type"] == "invalid_request_error"
    assert reason in error["message"]
    [record] = warnings_and_worse(caplog)
    assert record.exc_info is None and record.exc_text is None
    assert record.name == "claude_proxy.connections"
    assert answer.headers["request-id"] in record.getMessage()
    assert "\n" not in record.getMessage()


@pytest.mark.parametrize(
    "raw",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 9000 + b"\r\n\r\n",
        b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200)) + b"\r\n",
    ],
    ids=["long header", "long request line", "too many headers"],
)
async def test_an_oversized_head_gets_431_request_too_large(
    start_guarded: StartGuarded, caplog: pytest.LogCaptureFixture, raw: bytes
) -> None:
    gateway = await start_guarded()
    caplog.set_level(logging.DEBUG)
    answer = await send(gateway, raw)
    assert answer.status == 431
    assert answer.error()["type"] == "request_too_large"
    assert len(warnings_and_worse(caplog)) == 1
    assert b"aaaa" not in answer.body  # the client's bytes are not echoed back


async def test_a_flood_of_bad_requests_logs_a_few_lines_and_counts_the_rest(
    start_guarded: StartGuarded, caplog: pytest.LogCaptureFixture
) -> None:
    gateway = await start_guarded()
    caplog.set_level(logging.DEBUG)
    for _ in range(40):
        assert (await send(gateway, MALFORMED[1][0])).status == 400
    assert 1 <= len(warnings_and_worse(caplog)) <= 6
    assert gateway.clients.stats.bad_requests == 40


async def test_a_malformed_chunk_after_the_head_gets_400_at_once(
    start_guarded: StartGuarded,
) -> None:
    # aiohttp queues the parser's error behind the request and leaves its handler
    # waiting for the rest of the body (here, 30 s).
    gateway = await start_guarded(body_timeout=30)
    reader, writer = await connect(gateway)
    chunked = post_head(0, Expect="100-continue").replace(
        b"Content-Length: 0", b"Transfer-Encoding: chunked"
    )
    writer.write(chunked)
    async with asyncio.timeout(5):  # the handler runs and waits for the body
        assert await reader.readuntil(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b'5\r\n{"a":\r\nZZ\r\nnot a chunk\r\n0\r\n\r\n')
    answer = await read_answer(reader, within=3.0)
    assert await closed(reader)
    writer.close()
    assert answer.status == 400
    error = answer.error()
    assert error["type"] == "invalid_request_error"
    assert "chunk" in error["message"]
