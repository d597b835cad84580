"""Deadlines on client connections: a request head, a request body."""

from __future__ import annotations

import asyncio

import aiohttp

from claude_proxy.server import RunningServer
from tests.connections.conftest import StartGuarded
from tests.connections.raw import closed, connect, message_bytes, post_head, read_answer
from tests.helpers import API_HEADERS, message_body


async def still_serving(gateway: RunningServer) -> None:
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{gateway.url}/v1/messages", json=message_body(), headers=API_HEADERS) as r,
    ):
        assert r.status == 200


async def test_a_connection_that_sends_nothing_is_closed_after_header_timeout(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(header_timeout=0.2)
    loop = asyncio.get_running_loop()
    opened = loop.time()  # before connecting: the server's clock never starts earlier
    reader, writer = await connect(gateway)
    assert await closed(reader, within=3.0)
    assert 0.15 < loop.time() - opened < 2.0
    assert gateway.clients.stats.header_timeouts == 1
    writer.close()
    await still_serving(gateway)


async def test_a_head_sent_a_byte_at_a_time_is_closed_though_bytes_keep_coming(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(header_timeout=0.2)
    loop = asyncio.get_running_loop()
    opened = loop.time()
    reader, writer = await connect(gateway)
    sent = 0

    async def trickle() -> None:
        nonlocal sent
        endless = b"GET /healthz HTTP/1.1\r\n" + b"X-Slow: yes\r\n" * 1000
        for byte in endless:
            writer.write(bytes([byte]))
            sent += 1
            await asyncio.sleep(0.01)

    trickling = asyncio.create_task(trickle())
    try:
        assert await closed(reader, within=3.0)
        elapsed = loop.time() - opened
    finally:
        trickling.cancel()
        writer.close()
    assert 0.15 < elapsed < 2.0
    assert sent > 5  # it was sending all along, and never finished its head
    assert gateway.clients.stats.header_timeouts == 1


async def test_a_body_trickled_below_the_minimum_rate_gets_408_and_the_connection_closes(
    start_guarded: StartGuarded,
) -> None:
    # 0.3 s plus 1 s per 100 bytes; 50 bytes a second falls behind at 0.6 s.
    gateway = await start_guarded(body_timeout=0.3, body_min_rate=100)
    loop = asyncio.get_running_loop()
    reader, writer = await connect(gateway)
    writer.write(post_head(1000))

    async def trickle() -> None:
        for _ in range(1000):
            writer.write(b" ")
            await asyncio.sleep(0.02)

    trickling = asyncio.create_task(trickle())
    started = loop.time()
    try:
        answer = await read_answer(reader, within=5.0)
        elapsed = loop.time() - started
        assert await closed(reader, within=2.0)
    finally:
        trickling.cancel()
        writer.close()
    assert answer.status == 408
    error = answer.error()
    assert error["type"] == "timeout_error"
    assert "did not arrive in time" in error["message"]
    assert 0.4 < elapsed < 3.0
    assert gateway.clients.stats.body_timeouts == 1
    await still_serving(gateway)


async def test_a_body_without_a_minimum_rate_gets_408_after_body_timeout(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(body_timeout=0.2, body_min_rate=0)
    reader, writer = await connect(gateway)
    writer.write(post_head(100) + b'{"model": ')
    answer = await read_answer(reader, within=3.0)
    assert answer.status == 408
    assert answer.error()["type"] == "timeout_error"
    assert await closed(reader, within=2.0)
    writer.close()


async def test_a_large_body_on_a_slow_link_is_given_time_by_the_minimum_rate(
    start_guarded: StartGuarded,
) -> None:
    # 1,600 bytes at ~4,000 a second take 0.4 s: past body_timeout, inside the extension.
    gateway = await start_guarded(body_timeout=0.2, body_min_rate=1000)
    reader, writer = await connect(gateway)
    body = message_bytes(1600)
    writer.write(post_head(len(body)))
    for start in range(0, len(body), 200):
        writer.write(body[start : start + 200])
        await asyncio.sleep(0.05)
    answer = await read_answer(reader)
    writer.close()
    assert answer.status == 200, answer.body
    assert gateway.clients.stats.body_timeouts == 0


async def test_a_keep_alive_connection_waits_keepalive_timeout_for_its_next_head(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(header_timeout=0.2, keepalive_timeout=1.0)
    loop = asyncio.get_running_loop()
    reader, writer = await connect(gateway)
    asked = loop.time()  # the server's keep-alive clock starts after this, never before
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
    assert (await read_answer(reader)).status == 200
    assert await closed(reader, within=4.0)
    writer.close()
    # Idle after an answer is keep-alive: its timeout, not the head's, applies.
    assert 0.8 < loop.time() - asked < 3.0
