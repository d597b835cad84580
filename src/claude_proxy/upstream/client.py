"""A pooled HTTP client towards one Messages API deployment.

aiohttp's own exceptions stop here: callers only ever see ``GatewayError``s,
so the rest of the gateway never imports aiohttp's error hierarchy.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from claude_proxy.config import TimeoutSettings, UpstreamSettings
from claude_proxy.errors import GatewayError, UpstreamTimeout, UpstreamUnavailable

__all__ = ["UpstreamClient", "translate_client_error"]


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

    @asynccontextmanager
    async def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> AsyncIterator[aiohttp.ClientResponse]:
        """Open a request; the response's headers have arrived when this yields."""
        try:
            async with self._session.request(
                method, self.base_url + path, headers=headers, data=body, allow_redirects=False
            ) as response:
                yield response
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_client_error(exc, self.name) from None

    async def send(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes | None = None
    ) -> aiohttp.ClientResponse:
        """Send a request; the caller must ``release()`` or ``close()`` the response."""
        try:
            return await self._session.request(
                method, self.base_url + path, headers=headers, data=body, allow_redirects=False
            )
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise translate_client_error(exc, self.name) from None

    async def close(self) -> None:
        await self._session.close()


def translate_client_error(exc: BaseException, upstream_name: str) -> GatewayError:
    """Map an aiohttp or timeout failure to the error the client should see."""
    if isinstance(exc, asyncio.TimeoutError | aiohttp.ServerTimeoutError):
        return UpstreamTimeout(f"upstream {upstream_name!r} did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(f"could not connect to upstream {upstream_name!r}")
    if isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return UpstreamUnavailable(f"upstream {upstream_name!r} closed the connection")
    if isinstance(exc, aiohttp.ClientPayloadError):
        return UpstreamUnavailable(f"upstream {upstream_name!r} sent an incomplete response")
    return UpstreamUnavailable(f"upstream {upstream_name!r} failed: {type(exc).__name__}")
