"""Every /v1 route the gateway does not handle itself is relayed as it is, both ways streamed."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import orjson
import pytest
from aiohttp import web
from multidict import CIMultiDictProxy

from claude_proxy.config import RetrySettings
from claude_proxy.pipeline.call import Call, Route
from claude_proxy.server import RunningServer, start_server
from tests.conftest import SIM_KEY, StartGateway

MiB = 1024 * 1024
CLIENT = {"anthropic-version": "2023-06-01", "x-api-key": "client-key"}

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Seen:
    method: str
    path_qs: str
    headers: CIMultiDictProxy[str]
    body: bytes


@dataclass
class FilesUpstream:
    """Records each request; answers with the next scripted reply, or a handler's answer."""

    seen: list[Seen] = field(default_factory=list)
    replies: deque[tuple[int, bytes]] = field(default_factory=deque)
    handler: Handler | None = None
    bytes_in: int = 0  # of the request being received, as it arrives
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    server: RunningServer | None = None

    async def start(self) -> str:
        app = web.Application(client_max_size=1 << 40)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self.server = await start_server(app, "127.0.0.1", 0, shutdown_timeout=0.1)
        return self.server.url

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if self.handler is not None:
            return await self.handler(request)
        body = bytearray()
        self.bytes_in = 0
        async for chunk in request.content.iter_any():
            body += chunk
            self.bytes_in += len(chunk)
            self.arrived.set()
        self.seen.append(Seen(request.method, request.path_qs, request.headers, bytes(body)))
        status, payload = self.replies.popleft() if self.replies else (200, b'{"ok":true}')
        return web.Response(
            status=status,
            body=payload,
            content_type="application/json",
            headers={"request-id": "req_upstream", "x-upstream": "yes"},
        )


@pytest.fixture
async def upstream() -> AsyncIterator[FilesUpstream]:
    files = FilesUpstream()
    await files.start()
    yield files
    assert files.server is not None
    await files.server.stop()


async def until(condition: Callable[[], bool], what: str) -> None:
    try:
        async with asyncio.timeout(10):
            while not condition():
                await asyncio.sleep(0.005)
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def attempts(response: aiohttp.ClientResponse) -> int:
    return int(response.headers["x-proxy-attempts"])


async def test_a_route_it_does_not_know_goes_upstream_as_sent(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)
    upstream.replies.append((201, b'{"id":"msgbatch_01"}'))
    form = b"--b\r\nContent-Disposition: form-data; name=file\r\n\r\n\x00\x01binary\r\n--b--\r\n"
    headers = {
        **CLIENT,
        "content-type": "multipart/form-data; boundary=b",
        "anthropic-beta": "files-api-2025-04-14",
        "x-custom": "kept",
    }
    url = f"{gateway.url}/v1/some/new_route?limit=2&after_id=x"
    async with http.post(url, data=form, headers=headers) as r:
        assert r.status == 201
        assert await r.read() == b'{"id":"msgbatch_01"}'
        assert r.headers["x-upstream"] == "yes"
        assert r.headers["request-id"] == "req_upstream"
        assert attempts(r) == 1
    [seen] = upstream.seen
    assert (seen.method, seen.path_qs) == ("POST", "/v1/some/new_route?limit=2&after_id=x")
    assert seen.body == form
    assert seen.headers["content-type"] == "multipart/form-data; boundary=b"
    assert seen.headers["anthropic-beta"] == "files-api-2025-04-14"
    assert seen.headers["x-custom"] == "kept"
    assert seen.headers["x-api-key"] == SIM_KEY  # the client's credential replaced
    async with http.delete(f"{gateway.url}/v1/files/file_011abc", headers=CLIENT) as r:
        assert r.status == 200
    assert (upstream.seen[-1].method, upstream.seen[-1].path_qs) == (
        "DELETE",
        "/v1/files/file_011abc",
    )


async def test_a_tenant_is_authenticated_before_anything_is_sent(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(
        upstream.server.url,
        tenants=[{"name": "acme", "keys": ["sk-acme-key-1"]}],
    )
    wrong = {**CLIENT, "x-api-key": "sk-wrong"}
    async with http.post(f"{gateway.url}/v1/files", data=b"x" * 100, headers=wrong) as r:
        assert r.status == 401
        assert (await r.json())["error"]["type"] == "authentication_error"
    assert upstream.seen == []
    right = {**CLIENT, "x-api-key": "sk-acme-key-1"}
    async with http.get(f"{gateway.url}/v1/files", headers=right) as r:
        assert r.status == 200
    assert upstream.seen[0].headers["x-api-key"] == SIM_KEY


async def test_an_upload_streams_through_without_being_held(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)
    first, rest = b"a" * (3 * MiB), b"b" * (5 * MiB)

    async def body() -> AsyncIterator[bytes]:
        yield first
        # A gateway that read the whole body before sending would wait here forever.
        await until(lambda: upstream.bytes_in >= len(first), "the first part upstream")
        yield rest

    headers = {**CLIENT, "content-type": "application/octet-stream"}
    async with http.post(f"{gateway.url}/v1/files", data=body(), headers=headers) as r:
        assert r.status == 200
        assert attempts(r) == 1
    [seen] = upstream.seen
    assert hashlib.sha256(seen.body).digest() == hashlib.sha256(first + rest).digest()


async def test_a_download_streams_through_with_its_length(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)
    part = b"z" * (2 * MiB)
    client_has_first = asyncio.Event()

    async def download(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "application/pdf"})
        response.content_length = 3 * len(part)
        await response.prepare(request)
        await response.write(part)
        # A gateway that read the whole answer before sending would wait here forever.
        async with asyncio.timeout(10):
            await client_has_first.wait()
        await response.write(part + part)
        await response.write_eof()
        return response

    upstream.handler = download
    received = 0
    async with http.get(f"{gateway.url}/v1/files/file_011abc/content", headers=CLIENT) as r:
        assert r.status == 200
        assert r.headers["content-type"] == "application/pdf"
        assert r.content_length == 3 * len(part)
        async for chunk in r.content.iter_any():
            received += len(chunk)
            if received >= len(part):
                client_has_first.set()
    assert received == 3 * len(part)


async def test_a_download_cut_by_the_upstream_is_cut_for_the_client(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        response.content_length = MiB
        await response.prepare(request)
        await response.write(b"x" * 1000)
        assert request.transport is not None
        request.transport.abort()
        return response

    upstream.handler = broken
    async with http.get(f"{gateway.url}/v1/files/file_1/content", headers=CLIENT) as r:
        assert r.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await r.read()
    upstream.handler = None
    async with http.get(f"{gateway.url}/v1/files", headers=CLIENT) as r:
        assert r.status == 200  # and it goes on serving
    async with http.get(f"{gateway.url}/metrics") as r:
        metrics = await r.text()
    broke = [
        line
        for line in metrics.splitlines()
        if line.startswith("api_errors_total{") and 'route="/v1/files/{id}/content"' in line
    ]
    assert len(broke) == 1 and 'status_class="2xx"' in broke[0] and broke[0].endswith(" 1.0")


async def test_a_relayed_event_stream_cut_by_the_upstream_ends_with_an_error_event(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)

    async def broken(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b'event: completion\ndata: {"completion":"Hel"}\n\n')
        assert request.transport is not None
        request.transport.abort()
        return response

    upstream.handler = broken
    body = {"model": "claude-2.1", "prompt": "\n\nHuman: Hi\n\nAssistant:", "stream": True}
    async with http.post(f"{gateway.url}/v1/complete", json=body, headers=CLIENT) as r:
        assert r.status == 200
        received = await r.read()  # ends cleanly: no ClientPayloadError
    events = received.split(b"\n\n")
    assert events[0].startswith(b"event: completion")
    assert events[1].startswith(b"event: error\n")
    assert orjson.loads(events[1].split(b"data: ", 1)[1])["error"]["type"] == "api_error"
    async with http.get(f"{gateway.url}/metrics") as r:
        metrics = await r.text()
    assert any(
        line.startswith("api_upstream_stream_breaks_total{") and 'reason="cut"' in line
        for line in metrics.splitlines()
    ), "the break counts against the upstream, as a broken message stream does"


async def test_gzip_answers_pass_as_encoded(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)
    packed = gzip.compress(b'{"data":[]}' * 100)
    seen_encoding: list[str | None] = []

    async def gzipped(request: web.Request) -> web.StreamResponse:
        seen_encoding.append(request.headers.get("accept-encoding"))
        return web.Response(
            body=packed, headers={"content-type": "application/json", "content-encoding": "gzip"}
        )

    upstream.handler = gzipped
    headers = {**CLIENT, "accept-encoding": "gzip"}
    async with http.get(f"{gateway.url}/v1/files", headers=headers, auto_decompress=False) as r:
        assert r.headers["content-encoding"] == "gzip"
        assert r.content_length == len(packed)
        assert await r.read() == packed
    # Without the client's Accept-Encoding, the gateway asks for none of its own.
    async with http.get(
        f"{gateway.url}/v1/files", headers=CLIENT, skip_auto_headers=["Accept-Encoding"]
    ) as r:
        await r.read()
    assert seen_encoding == ["gzip", None]


async def test_an_upload_over_the_relay_limit_is_refused_before_it_is_sent(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url, max_relay_body_bytes=2 * MiB)
    headers = {**CLIENT, "content-type": "application/octet-stream"}
    async with http.post(f"{gateway.url}/v1/files", data=b"x" * (3 * MiB), headers=headers) as r:
        assert r.status == 413
        error = (await r.json())["error"]
        assert error["type"] == "request_too_large"
        assert str(2 * MiB) in error["message"]
    assert upstream.seen == []

    async def undeclared() -> AsyncIterator[bytes]:  # chunked: no length to refuse early
        for _ in range(3):
            yield b"y" * MiB

    # The client's fault, not the upstream's: more of them than the breaker needs to open
    # (min_requests 10) leave it closed, and other calls go on.
    for _ in range(12):
        async with http.post(f"{gateway.url}/v1/files", data=undeclared(), headers=headers) as r:
            assert r.status == 413
            assert (await r.json())["error"]["type"] == "request_too_large"
    async with http.get(f"{gateway.url}/v1/files", headers=CLIENT) as r:
        assert r.status == 200


async def test_reads_are_retried_and_creations_only_when_nothing_was_processed(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    retry = RetrySettings(max_attempts=3, base_delay=0.01, max_delay=0.02)
    gateway = await start_gateway(upstream.server.url, retry=retry)
    overloaded = (529, b'{"type":"error","error":{"type":"overloaded_error","message":"o"}}')
    failed = (500, b'{"type":"error","error":{"type":"api_error","message":"e"}}')

    upstream.replies.extend([failed, (200, b'{"data":[]}')])
    async with http.get(f"{gateway.url}/v1/messages/batches", headers=CLIENT) as r:
        assert (r.status, attempts(r)) == (200, 2)  # a read may run twice

    upstream.replies.extend([failed, (200, b"{}")])
    batch = b'{"requests":[]}'
    async with http.post(f"{gateway.url}/v1/messages/batches", data=batch, headers=CLIENT) as r:
        assert (r.status, attempts(r)) == (500, 1)  # perhaps created: never sent twice
    upstream.replies.clear()

    upstream.replies.extend([overloaded, (200, b'{"id":"msgbatch_01"}')])
    async with http.post(f"{gateway.url}/v1/messages/batches", data=batch, headers=CLIENT) as r:
        assert (r.status, attempts(r)) == (200, 2)  # a 529 says it was not processed
        assert await r.read() == b'{"id":"msgbatch_01"}'
    assert [s.body for s in upstream.seen[-2:]] == [batch, batch]


async def test_relayed_routes_are_counted_under_templated_routes(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url)
    for file_id in ("file_011abc", "file_011def"):
        async with http.get(f"{gateway.url}/v1/files/{file_id}?x=1", headers=CLIENT) as r:
            assert r.status == 200
    upstream.replies.append(
        (404, b'{"type":"error","error":{"type":"not_found_error","message":"n"}}')
    )
    async with http.get(f"{gateway.url}/v1/made/up/route", headers=CLIENT) as r:
        assert r.status == 404
    async with http.get(f"{gateway.url}/metrics") as r:
        metrics = await r.text()
    routes = {
        line.split('route="')[1].split('"')[0]
        for line in metrics.splitlines()
        if line.startswith("api_request_duration_seconds_count{")
    }
    assert routes == {"/v1/files/{id}", "other"}
    assert "file_011abc" not in metrics and "made" not in metrics


class TagRelayed:
    """A stage that reads a relayed JSON body and adds to it."""

    name = "tag_relayed"
    routes = frozenset({Route.RELAY})

    async def on_request(self, call: Call) -> None:
        if call.method == "POST" and call.read_body is not None:
            call.load_body(await call.read_body())
            call.set_body({**call.body, "tag": "added by a stage"})


async def test_a_relayed_body_a_stage_changed_goes_up_whole(
    start_gateway: StartGateway, upstream: FilesUpstream, http: aiohttp.ClientSession
) -> None:
    assert upstream.server is not None
    gateway = await start_gateway(upstream.server.url, extra_stages=lambda _: [TagRelayed()])
    headers = {**CLIENT, "content-type": "application/json"}
    async with http.post(f"{gateway.url}/v1/things", data=b'{"a": 1}', headers=headers) as r:
        assert r.status == 200
    [seen] = upstream.seen
    assert orjson.loads(seen.body) == {"a": 1, "tag": "added by a stage"}
    assert int(seen.headers["content-length"]) == len(seen.body)
