"""Connection limits: per address and in total; idle connections make room, busy ones don't."""

from __future__ import annotations

import asyncio

import aiohttp

from claude_proxy.server import RunningServer
from tests.connections.conftest import StartGuarded
from tests.connections.raw import Stream, busy, close_all, closed, connect, head, read_answer
from tests.helpers import API_HEADERS, message_body


def client_from(source: str) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(source, 0)))


async def served_from(gateway: RunningServer, source: str) -> None:
    """Health probes and an API call from ``source`` are answered."""
    async with client_from(source) as http:
        for probe in ("/healthz", "/readyz"):
            async with http.get(f"{gateway.url}{probe}") as r:
                assert r.status == 200, probe
        body = message_body()
        async with http.post(f"{gateway.url}/v1/messages", json=body, headers=API_HEADERS) as r:
            assert r.status == 200


async def healthz_on(stream: Stream) -> int:
    reader, writer = stream
    writer.write(head("GET", "/healthz"))
    return (await read_answer(reader)).status


async def test_an_address_at_its_limit_is_refused_while_other_addresses_are_served(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(max_connections_per_address=2)
    held = [await busy(gateway), await busy(gateway)]
    try:
        reader, writer = await connect(gateway)
        answer = await read_answer(reader)
        assert await closed(reader)
        writer.close()
        assert answer.status == 503
        assert answer.headers["retry-after"] == "1"
        assert answer.headers["connection"] == "close"
        error = answer.error()
        assert error["type"] == "overloaded_error"
        assert "from your address (limit 2)" in error["message"]
        await served_from(gateway, "127.0.0.2")
    finally:
        await close_all(held)
    assert gateway.clients.stats.refused_address == 1


async def test_an_address_at_its_limit_closes_its_longest_idle_connection_for_a_new_one(
    start_guarded: StartGuarded,
) -> None:
    # Behind a NAT, one client's idle sockets must not lock its neighbours out.
    gateway = await start_guarded(max_connections_per_address=2)
    oldest, idle = await connect(gateway), await connect(gateway)
    await asyncio.sleep(0.05)  # both admitted, in this order
    newcomer = await connect(gateway)
    try:
        assert await healthz_on(newcomer) == 200
        assert await closed(oldest[0], within=2.0)
        assert await healthz_on(idle) == 200
    finally:
        await close_all([oldest, idle, newcomer])
    assert gateway.clients.stats.evicted == 1


async def test_at_the_total_limit_every_newcomer_is_refused_when_all_are_busy(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(max_connections=3, max_connections_per_address=0)
    held = [await busy(gateway, f"127.0.0.{n}") for n in (1, 2, 3)]
    try:
        reader, writer = await connect(gateway, "127.0.0.4")
        answer = await read_answer(reader)
        writer.close()
        assert answer.status == 503
        error = answer.error()
        assert error["type"] == "overloaded_error"
        assert "connection limit (3)" in error["message"]
    finally:
        await close_all(held)
    assert gateway.clients.stats.refused_total == 1


async def test_at_the_total_limit_the_longest_idle_connection_makes_room(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(max_connections=3, max_connections_per_address=0)
    held = [await busy(gateway, "127.0.0.1"), await busy(gateway, "127.0.0.2")]
    idle = await connect(gateway, "127.0.0.3")
    await asyncio.sleep(0.05)
    try:
        await served_from(gateway, "127.0.0.4")
        assert await closed(idle[0], within=2.0)
    finally:
        await close_all([*held, idle])
    assert gateway.clients.stats.evicted >= 1
    assert gateway.clients.stats.refused_total == 0


async def test_a_thousand_idle_connections_from_one_address_leave_others_served(
    start_guarded: StartGuarded,
) -> None:
    gateway = await start_guarded(max_connections=600)  # 300 per address
    flood: list[Stream] = []
    try:
        for _ in range(1000):
            flood.append(await connect(gateway))
        await served_from(gateway, "127.0.0.2")
        # The flood's own oldest sockets made room for its newest ones.
        assert all([await closed(reader, within=2.0) for reader, _ in flood[:700]])
        table = gateway.clients.table
        assert table.count("127.0.0.1") == 300
        assert table.total <= 301
    finally:
        await close_all(flood)
    assert gateway.clients.stats.evicted >= 700
