"""The floor: a bare pass-through proxy on the gateway's own HTTP stack, with no features.

Whatever the gateway costs above this proxy is the price of its features, not of
aiohttp or uvloop. Run: ``python benchmarks/passthrough.py --port P --upstream URL``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web

_SESSION = web.AppKey("session", aiohttp.ClientSession)
_UPSTREAM = web.AppKey("upstream", str)
_NOT_UP = frozenset({"host", "content-length"})
# aiohttp frames and dates the response itself.
_NOT_DOWN = frozenset({"content-length", "transfer-encoding", "connection", "date", "server"})


async def forward(request: web.Request) -> web.StreamResponse:
    headers = {k: v for k, v in request.headers.items() if k.lower() not in _NOT_UP}
    body = await request.read()
    url = request.app[_UPSTREAM] + request.path
    async with request.app[_SESSION].post(url, headers=headers, data=body) as upstream:
        out = {k: v for k, v in upstream.headers.items() if k.lower() not in _NOT_DOWN}
        if upstream.content_type != "text/event-stream":
            return web.Response(status=upstream.status, body=await upstream.read(), headers=out)
        response = web.StreamResponse(status=upstream.status, headers=out)
        await response.prepare(request)
        async for chunk in upstream.content.iter_any():
            await response.write(chunk)
        await response.write_eof()
        return response


async def _session(app: web.Application) -> AsyncIterator[None]:
    # limit=0: an unbounded pool, as the gateway's default upstream_pool_size.
    app[_SESSION] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    yield
    await app[_SESSION].close()


async def serve(port: int, upstream: str) -> None:
    app = web.Application()
    app[_UPSTREAM] = upstream.rstrip("/")
    app.cleanup_ctx.append(_session)
    app.router.add_post("/{path:.*}", forward)
    runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    try:
        await asyncio.Event().wait()  # until the benchmark kills us
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:9000")
    args = parser.parse_args()
    uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
