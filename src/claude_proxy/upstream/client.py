"""A pooled HTTP client towards one Messages API deployment.

aiohttp stops here: callers get an ``UpstreamResponse`` (status, headers, body read
whole or chunk by chunk) and only ever see ``GatewayError``s, so the rest of the
gateway imports neither aiohttp's types nor its error hierarchy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterator, Mapping

import aiohttp
from multidict import CIMultiDictProxy

from claude_proxy.config import TimeoutSettings, UpstreamSettings
from claude_proxy.errors import (
    GatewayError,
    UpstreamTimeout,
    UpstreamUnavailable,
    UpstreamUnreachable,
)

__all__ = ["UpstreamClient", "UpstreamResponse", "translate_client_error"]


class UpstreamResponse:
    """A response whose headers have arrived; its body is read with ``read`` or ``chunks``.

    The caller must end it with ``release()`` (body read to the end: the connection goes
    back to the pool) or ``close()`` (anything else: the connection is dropped).
    """

    __slots__ = ("_response", "_upstream")

    def __init__(self, response: aiohttp.ClientResponse, upstream: str) -> None:
        self._response = response
        self._upstream = upstream

    @property
    def status(self) -> int:
        return self._response.status

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self._response.headers

    @property
    def content_type(self) -> str:
        return self._response.content_type

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_client_error(exc, self._upstream) from None

    def chunks(self, pieces: tuple[int, int] | None = None) -> AsyncIterator[bytes]:
        """The body as it arrives; a cut or silent connection raises a ``GatewayError``.

        With ``pieces`` (first, rest), each arrival is handed over ``cut`` in pieces.
        """
        return _Chunks(self._response.content.readany, self._upstream, pieces)

    def release(self) -> None:
        self._response.release()

    def close(self) -> None:
        self._response.close()


def cut(data: bytes, first: int, rest: int) -> Iterator[bytes]:
    """``data`` in pieces: the first of at most ``first`` bytes (so that its first events
    go on after little work), the others of at most ``rest`` (few writes for a long answer
    that came at once)."""
    yield data[:first]
    for start in range(first, len(data), rest):
        yield data[start : start + rest]


class _Chunks:
    """An iterator rather than an async generator: no generator bookkeeping per stream, and
    nothing to close (the response is released or closed by its owner).

    The pieces are cut here rather than by aiohttp's ``iter_chunked``, which copies what is
    left of its buffer after each piece: quadratic in the size of an answer that arrived
    at once (a 75 KB burst read 8 KB at a time copied ~400 KB). It calls ``readany``
    itself rather than through aiohttp's iterator: one frame less to resume for each
    arrival, which a paced stream's every event waits for."""

    __slots__ = ("_left", "_pieces", "_read", "_upstream")

    def __init__(
        self, read: Callable[[], Awaitable[bytes]], upstream: str, pieces: tuple[int, int] | None
    ) -> None:
        self._read = read
        self._upstream = upstream
        self._pieces = pieces
        self._left: Iterator[bytes] = iter(())  # the rest of the current arrival's pieces

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        piece = next(self._left, None)
        if piece is not None:
            return piece
        try:
            chunk = await self._read()
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_client_error(exc, self._upstream) from None
        if not chunk:
            raise StopAsyncIteration
        if self._pieces is None or len(chunk) <= self._pieces[0]:
            return chunk  # a paced event: no pieces to cut
        self._left = cut(chunk, *self._pieces)
        return next(self._left)


# A relayed body goes back encoded as the upstream sent it: only what the client accepts.
_NO_ACCEPT_ENCODING = ("Accept-Encoding",)


class UpstreamClient:
    """Sends requests to one deployment over a shared keep-alive connection pool."""

    def __init__(
        self, upstream: UpstreamSettings, timeouts: TimeoutSettings, pool_size: int = 0
    ) -> None:
        self.name = upstream.name
        self.base_url = upstream.base_url
        self.api_key = upstream.api_key.get_secret_value() if upstream.api_key else None
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=pool_size, ttl_dns_cache=300),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=timeouts.connect, sock_read=timeouts.read
            ),
            # The gateway relays bodies; cookies and redirects are not the API's business.
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=True,
            skip_auto_headers=("User-Agent",),
        )

    async def send(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str],
        body: bytes | AsyncIterable[bytes] | None = None,
        *,
        decompress: bool = True,
    ) -> UpstreamResponse:
        """Send a request; the caller must ``release()`` or ``close()`` the response.

        ``decompress=False`` relays the body as encoded: no Accept-Encoding of the
        gateway's own (only the client's), and no decoding (its Content-Length holds).
        A body given as an iterable is streamed as it comes.
        """
        try:
            response = await self._session.request(
                method,
                self.base_url + path,
                headers=headers,
                data=body,
                allow_redirects=False,
                auto_decompress=decompress,
                skip_auto_headers=None if decompress else _NO_ACCEPT_ENCODING,
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_client_error(exc, self.name) from None
        return UpstreamResponse(response, self.name)

    async def close(self) -> None:
        await self._session.close()


def translate_client_error(exc: BaseException, upstream_name: str) -> GatewayError:
    """Map an aiohttp or timeout failure to the error the client should see."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"upstream {upstream_name!r} did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnreachable(f"could not connect to upstream {upstream_name!r}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamUnavailable(f"upstream {upstream_name!r} closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamUnavailable(f"upstream {upstream_name!r} sent an incomplete response")
    return UpstreamUnavailable(f"upstream {upstream_name!r} failed: {type(exc).__name__}")
