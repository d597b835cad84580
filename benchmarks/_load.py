"""Load generator process for the benchmarks: closed-loop workers on one aiohttp session.

It is started once and kept running so connection pools stay warm across
measurements. Each stdin line is a JSON job (url, stream, concurrency, duration,
max_requests, api_key); each stdout line is the JSON summary of that job.

A job with ``"raw": true`` (JSON answers only) runs on raw asyncio protocols instead:
one keep-alive connection per worker, the request's bytes built once, and only the
status line and Content-Length read back. aiohttp's client costs ~0.1 ms of CPU a
request, which on a 2-core host is a quarter of what the gateway itself spends; the
raw client costs a fraction of that, so a benchmark that shares the cores with its
load generator measures the gateway, not the client (as wrk would, without needing it).
"""

from __future__ import annotations

import asyncio
import math
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

import aiohttp
import orjson
import uvloop

# Every answer is 16 tokens, so the three targets do identical upstream work.
ANSWER_TOKENS = "16"
REQUEST_TIMEOUT_S = 30.0
_REQUEST = {
    "model": "claude-sonnet-4-5",
    "max_tokens": 64,
    "messages": [{"role": "user", "content": "Say hello in one short sentence."}],
}


@dataclass(frozen=True, slots=True)
class Job:
    url: str
    stream: bool
    concurrency: int
    duration: float
    max_requests: int
    api_key: str
    headers: dict[str, str] = field(default_factory=dict)  # added to every request
    raw: bool = False  # JSON on raw protocols (see the module's doc)


@dataclass(slots=True)
class Tally:
    latencies: list[float] = field(default_factory=list)
    ttfbs: list[float] = field(default_factory=list)
    ttfts: list[float] = field(default_factory=list)  # to the first content_block_delta
    issued: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)

    def fail(self, reason: str) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(reason)


def request_body(stream: bool) -> bytes:
    return orjson.dumps({**_REQUEST, "stream": True} if stream else _REQUEST)


def request_headers(api_key: str) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "anthropic-version": "2023-06-01",
        "x-api-key": api_key,
        "x-sim-answer-tokens": ANSWER_TOKENS,
    }


async def _read_stream(
    response: aiohttp.ClientResponse, start: float
) -> tuple[float, float, bytes]:
    """Time to the first body chunk and to the first text delta, and the stream's last
    bytes (to check it ended well)."""
    tail = await response.content.readany()
    ttfb = ttft = time.perf_counter() - start
    seen = tail
    while b"content_block_delta" not in seen:
        chunk = await response.content.readany()
        if not chunk:
            break
        ttft = time.perf_counter() - start
        seen, tail = seen + chunk, (tail + chunk)[-128:]
    async for chunk in response.content.iter_any():
        tail = (tail + chunk)[-128:]
    return ttfb, ttft, tail


async def _one(session: aiohttp.ClientSession, job: Job, body: bytes, tally: Tally) -> None:
    headers = {**request_headers(job.api_key), **job.headers}
    start = time.perf_counter()
    try:
        async with session.post(job.url, data=body, headers=headers) as response:
            if job.stream:
                ttfb, ttft, tail = await _read_stream(response, start)
            else:
                ttfb, ttft, tail = 0.0, 0.0, await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        tally.fail(f"{type(exc).__name__}: {exc}")
        return
    if status != 200:
        tally.fail(f"HTTP {status}: {tail[:200]!r}")
    elif job.stream and b"message_stop" not in tail:
        tally.fail(f"stream ended without message_stop: {tail[-80:]!r}")
    else:
        tally.latencies.append(time.perf_counter() - start)
        if job.stream:
            tally.ttfbs.append(ttfb)
            tally.ttfts.append(ttft)


async def _worker(
    session: aiohttp.ClientSession, job: Job, body: bytes, deadline: float, tally: Tally
) -> None:
    # Closed loop: the next request leaves as soon as the previous answer is read.
    while time.perf_counter() < deadline and tally.issued < job.max_requests:
        tally.issued += 1
        await _one(session, job, body, tally)


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.IGNORECASE)


class _RawConnection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection that sends a fixed request and reads answers
    framed by Content-Length (the gateway's JSON answers, errors included)."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._body_start = 0
        self._answer_end = -1  # where the answer being read ends in the buffer
        self._status = 0
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("connection closed by the server"))

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        if self._answer_end < 0:
            head_end = self._buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            head = bytes(self._buffer[:head_end])
            length = _CONTENT_LENGTH.search(head)
            if length is None:
                waiter.set_exception(ValueError(f"no content-length: {head[:200]!r}"))
                return
            self._status = int(head[9:12])
            self._body_start = head_end + 4
            self._answer_end = self._body_start + int(length.group(1))
        if len(self._buffer) >= self._answer_end:
            body = bytes(self._buffer[self._body_start : self._answer_end])
            del self._buffer[: self._answer_end]
            self._answer_end = -1
            waiter.set_result((self._status, body))

    async def ask(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self._waiter


def _raw_request(job: Job, body: bytes) -> tuple[str, int, bytes]:
    url = urlsplit(job.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    headers = {**request_headers(job.api_key), **job.headers, "content-length": str(len(body))}
    lines = [f"POST {url.path} HTTP/1.1", f"host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    return host, port, ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _raw_worker(job: Job, body: bytes, deadline: float, tally: Tally) -> None:
    host, port, request = _raw_request(job, body)
    loop = asyncio.get_running_loop()
    connection: _RawConnection | None = None
    while time.perf_counter() < deadline and tally.issued < job.max_requests:
        tally.issued += 1
        start = time.perf_counter()
        try:
            if connection is None or connection.transport is None:
                _, connection = await loop.create_connection(_RawConnection, host, port)
            status, answer = await connection.ask(request)  # the job's timeout bounds it
        except (OSError, ValueError) as exc:
            tally.fail(f"{type(exc).__name__}: {exc}")
            if connection is not None and connection.transport is not None:
                connection.transport.close()
            connection = None
            continue
        if status != 200:
            tally.fail(f"HTTP {status}: {answer[:200]!r}")
        else:
            tally.latencies.append(time.perf_counter() - start)
    if connection is not None and connection.transport is not None:
        connection.transport.close()


def _percentile_ms(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)] * 1000.0


async def run_job(session: aiohttp.ClientSession, job: Job) -> dict[str, Any]:
    tally = Tally()
    body = request_body(job.stream)
    start = time.perf_counter()
    deadline = start + job.duration
    if job.raw and job.stream:
        raise ValueError("the raw client reads JSON answers only")
    workers = [
        _raw_worker(job, body, deadline, tally)
        if job.raw
        else _worker(session, job, body, deadline, tally)
        for _ in range(job.concurrency)
    ]
    await asyncio.wait_for(asyncio.gather(*workers), job.duration + REQUEST_TIMEOUT_S)
    elapsed = time.perf_counter() - start
    return {
        "requests": len(tally.latencies),
        "errors": tally.errors,
        "error_samples": tally.error_samples,
        "elapsed_s": elapsed,
        "rps": len(tally.latencies) / elapsed,
        "p50_ms": _percentile_ms(tally.latencies, 0.50),
        "p90_ms": _percentile_ms(tally.latencies, 0.90),
        "p99_ms": _percentile_ms(tally.latencies, 0.99),
        "ttfb_p50_ms": _percentile_ms(tally.ttfbs, 0.50),
        "ttfb_p99_ms": _percentile_ms(tally.ttfbs, 0.99),
        "ttft_p50_ms": _percentile_ms(tally.ttfts, 0.50),
    }


async def serve_jobs() -> None:
    loop = asyncio.get_running_loop()
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=120)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            result = await run_job(session, Job(**orjson.loads(line)))
            sys.stdout.buffer.write(orjson.dumps(result) + b"\n")
            sys.stdout.flush()


if __name__ == "__main__":
    uvloop.run(serve_jobs())
